# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers of the workflow tests: loading the tool scripts, writing fixture
results in the layout of ``tools/run_sweep.py`` and the configs of a tiny
real sweep on the embedded demo's data."""
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools'
DEMO_CONFIG = (
    REPO_ROOT / 'configs' / 'demo' /
    'coop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py')
#: The name the sweep gives the run of the sweep config on the tiny data
#: (``{algorithm}_{backbone}_clip-openai_1xb{batch}-ep{epochs}_{data}``).
SWEEP_RUN = ('coop_mmprompt-tiny-vit_clip-openai_1xb4-ep2_'
             'base2new-16shot-shapes')


def load_tool(relative: str) -> ModuleType:
    """Import a script of ``tools/`` (not a package) under a unique name."""
    path = TOOLS / relative
    name = 'mmprompt_tool_' + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_metrics(root: Path, protocol: str, dataset: str, config: str,
                  seed: int, accuracy: float, **settings) -> Path:
    """``root/<protocol>/<dataset>/<config>/seed<S>/metrics.json``, and the
    folder's ``sweep.json`` with ``settings`` (as ``tools/run_sweep.py``
    writes it) if any are given."""
    folder = root / protocol / dataset / config / f'seed{seed}'
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / 'metrics.json'
    path.write_text(json.dumps({'accuracy/top1': accuracy}))
    if settings:
        record = dict(
            protocol=protocol, dataset=dataset, seed=seed, **settings)
        (folder / 'sweep.json').write_text(json.dumps(record))
    return path


def make_tiny_data(root: Path) -> str:
    """4 classes of 32x32 PNG images in CoOp's split-file format and a
    random tiny CLIP saved in open_clip's format, under ``root``.

    Returns:
        str: The data root (``images/``, ``split.json``, ``clip.pt``).
    """
    import numpy as np
    from PIL import Image

    from mmprompt.testing import random_tiny_clip, save_open_clip_weights
    rng = np.random.default_rng(0)
    splits = dict(train=[], val=[], test=[])
    sizes = dict(train=4, val=2, test=3)
    for label, name in enumerate(('cat', 'dog', 'red_car', 'sea_lion')):
        folder = root / 'images' / name
        folder.mkdir(parents=True)
        i = 0
        for split, count in sizes.items():
            for _ in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f'{i}.png')
                splits[split].append([f'{name}/{i}.png', label, name])
                i += 1
    (root / 'split.json').write_text(json.dumps(splits))
    save_open_clip_weights(random_tiny_clip(), str(root / 'clip.pt'))
    return str(root)


def write_sweep_config(config_dir: Path, data_root: str) -> Path:
    """The demo's CoOp base-to-new config on the tiny data, with a val loop
    (what a sweep points at another dataset).

    Returns:
        Path: The config file.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    clip = os.path.join(data_root, 'clip.pt')
    path = config_dir / 'coop_tiny-vit_shapes.py'
    path.write_text(f'''\
_base_ = [{str(DEMO_CONFIG)!r}]
data = dict(split_file='split.json', image_dir='images')
model = dict(clip=dict(pretrained={clip!r}))
train_dataloader = dict(dataset=data)
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='SplitJsonDataset',
        **data,
        data_root={data_root!r},
        num_shots=4,
        seed=1,
        subsample_classes='base',
        split='val',
        pipeline={{{{_base_.test_pipeline}}}}))
val_evaluator = dict(type='Accuracy', topk=(1, ))
val_cfg = dict()
test_dataloader = dict(dataset=data)
default_hooks = dict(logger=dict(interval=1))
''')
    return path
