# Copyright (c) mmprompt contributors. All rights reserved.
"""Fixtures of the mmpretrain-client tests: tiny data, configs that inherit
the shipped ones and a checkpoint (helpers in ``compat_testing.py``)."""
import json
from pathlib import Path

import pytest
from compat_testing import (CALTECH_CLASSES, DEMO_CONFIG, SHIPPED_CONFIG,
                            TINY_PIPELINE)


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    from mmprompt.demo import prepare_demo_data
    root = tmp_path_factory.mktemp('compat_demo') / 'data'
    return prepare_demo_data(str(root), images_per_class=10)


@pytest.fixture(scope='session')
def demo_config(demo_data, tmp_path_factory) -> Path:
    """A user's config on the demo: the shipped demo config with the data
    and the tiny CLIP where the fixture made them."""
    root = demo_data['data_root']
    path = tmp_path_factory.mktemp('compat_configs') / 'demo.py'
    path.write_text(f"""_base_ = [{str(DEMO_CONFIG)!r}]
model = dict(clip=dict(pretrained={demo_data['clip']!r}))
train_dataloader = dict(dataset=dict(data_root={root!r}))
test_dataloader = dict(dataset=dict(data_root={root!r}))
""")
    return path


@pytest.fixture(scope='session')
def demo_classes(demo_data):
    """The base classes of the demo's test set, as mmprompt builds it."""
    from mmengine.config import Config

    from mmprompt.registry import DATASETS
    cfg = Config.fromfile(str(DEMO_CONFIG))
    dataset = DATASETS.build(
        dict(
            cfg.test_dataloader.dataset,
            data_root=demo_data['data_root'],
            pipeline=[]))
    return list(dataset.metainfo['classes'])


@pytest.fixture(scope='session')
def demo_checkpoint(demo_config, tmp_path_factory) -> Path:
    """One epoch of the demo with mmengine's Runner (what both mmprompt's
    and mmpretrain's tools/train.py run)."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    work_dir = tmp_path_factory.mktemp('compat_run')
    cfg = Config.fromfile(str(demo_config))
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler.T_max = 1
    cfg.train_dataloader.persistent_workers = False
    cfg.test_dataloader.persistent_workers = False
    Runner.from_cfg(cfg).train()
    return work_dir / 'epoch_1.pth'


def _image(path: Path, colour) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (40, 36), colour).save(path)


@pytest.fixture(scope='session')
def caltech_root(tmp_path_factory) -> Path:
    """A tiny Caltech101 in CoOp's layout (split file and image folder)."""
    root = tmp_path_factory.mktemp('compat_caltech')
    split = {}
    for name, count in (('train', 2), ('val', 1), ('test', 2)):
        split[name] = []
        for label, cname in enumerate(CALTECH_CLASSES):
            for i in range(count):
                rel = f'{cname}/{cname}_{name}_{i}.jpg'  # unique names
                _image(root / '101_ObjectCategories' / rel,
                       (40 * label, 200 - 30 * i, 90))
                split[name].append([rel, label, cname])
    (root / 'split_zhou_Caltech101.json').write_text(json.dumps(split))
    return root


@pytest.fixture(scope='session')
def shipped_config(caltech_root, tmp_path_factory) -> Path:
    """A user's config on a shipped model-zoo config (CoOp, Caltech101):
    the tiny CLIP, tiny images, the tiny tree, no worker processes."""
    path = tmp_path_factory.mktemp('compat_configs') / 'caltech.py'
    loader = (f'num_workers=0, persistent_workers=False, batch_size=4, '
              f'dataset=dict(data_root={str(caltech_root)!r}, '
              f'pipeline={TINY_PIPELINE})')
    path.write_text(f"""_base_ = [{str(SHIPPED_CONFIG)!r}]
model = dict(clip=dict(arch='mmprompt-tiny-vit', pretrained=None))
train_dataloader = dict({loader})
val_dataloader = dict({loader})
test_dataloader = dict({loader})
""")
    return path
