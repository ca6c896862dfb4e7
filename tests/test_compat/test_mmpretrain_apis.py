# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt configs and checkpoints through mmpretrain's Python APIs.

``mmpretrain.get_model`` / ``init_model`` and
``ImageClassificationInferencer`` run in this process, under mmpretrain's
default scope as after ``mmpretrain.utils.register_all_modules()``; and the
builds that mmpretrain's tools make from a config (model, datasets,
visualizer, ``tools/train.py``'s dataloader settings) on every shipped
config.
"""
import argparse
import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from compat_testing import CALTECH_CLASSES, REPO, mim_tool
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

CONFIGS = sorted(
    p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts)


@pytest.fixture
def mmpretrain_scope():
    """mmpretrain's default scope, as its tools and APIs set it."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def _images(demo_data, n=3):
    return sorted(
        str(p)
        for p in Path(demo_data['data_root'], 'images').glob('*/*.png'))[:n]


def _reference(demo_config, demo_checkpoint, names):
    """The trained model as mmprompt builds and loads it."""
    from mmengine.runner import load_checkpoint

    from mmprompt.registry import MODELS
    model = MODELS.build(Config.fromfile(str(demo_config)).model)
    load_checkpoint(model, str(demo_checkpoint), map_location='cpu')
    model.set_class_names(names)
    return model.eval()


# ---------------------------------------------------------------------------
# get_model / init_model
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('api', ['get_model', 'init_model'])
def test_get_model_restores_the_class_names_of_the_checkpoint(
        api, demo_config, demo_checkpoint, demo_classes, mmpretrain_scope):
    import mmpretrain
    model = getattr(mmpretrain, api)(
        str(demo_config), str(demo_checkpoint), device='cpu')
    assert type(model).__name__ == 'PromptClassifier'
    assert model.class_names == demo_classes
    assert list(model.dataset_meta['classes']) == demo_classes
    images = torch.rand(2, 3, 32, 32)
    reference = _reference(demo_config, demo_checkpoint, demo_classes)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images))


def test_get_model_without_a_checkpoint_keeps_mmpretrain_class_names_out(
        caltech_root, mmpretrain_scope):
    """Without a checkpoint get_model() takes the classes of the config's
    dataset type looked up in mmpretrain's scope: mmpretrain's Caltech101
    (102 classes), not mmprompt's CoOp split. They are refused, loudly."""
    from mmpretrain import get_model
    config = REPO / 'configs' / 'zeroshot' / (
        'zeroshot_vit-base-p16_clip-openai_base2new-caltech101.py')
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        model = get_model(
            str(config), clip=dict(arch='mmprompt-tiny-vit', pretrained=None))
    finally:
        logger.removeHandler(handler)
    assert model.class_names == []
    warned = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any('mmpretrain.datasets.caltech101.Caltech101' in m
               and 'set_class_names' in m for m in warned), warned
    with pytest.raises(RuntimeError, match='no class names'):
        model(torch.rand(1, 3, 32, 32))
    model.set_class_names(CALTECH_CLASSES)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 4)


def _tiny(model_cfg: dict) -> dict:
    if model_cfg['type'] == 'ImageClassifier':  # the linear probe
        return dict(
            backbone=dict(arch='mmprompt-tiny-vit', pretrained=None),
            head=dict(in_channels=64))
    tiny = dict(clip=dict(arch='mmprompt-tiny-vit', pretrained=None))
    # Deep prompts at the shipped depths (9, 12) need more blocks than the
    # tiny CLIP's 2 per tower: every depth the config sets becomes 2.
    learner = model_cfg.get('head', {}).get('prompt_learner', {})
    depths = {
        k: 2
        for k in ('depth', 'text_depth', 'vision_depth') if k in learner
    }
    if depths:
        tiny['head'] = dict(prompt_learner=depths)
    return tiny


def test_get_model_builds_every_shipped_model(mmpretrain_scope):
    from mmpretrain import get_model
    built = set()
    for path in CONFIGS:
        cfg = Config.fromfile(str(path))
        model_cfg = cfg.model.to_dict()
        key = repr(model_cfg)
        if key in built:
            continue
        built.add(key)
        model = get_model(str(path), **_tiny(model_cfg))
        assert type(model).__module__.startswith(('mmprompt', 'mmpretrain'))
        if model_cfg['type'] == 'AdapterClassifier':
            # A method on cached features scores nothing before it is
            # fitted (tools/train.py); its image features are the CLIP's.
            with torch.no_grad():
                features = model.extract_feat(torch.rand(1, 3, 32, 32))
            assert features.shape == (1, 64), path
            continue
        if model_cfg['type'] == 'PromptClassifier':
            model.set_class_names(['cat', 'dog'])
            expected = 2
        else:
            expected = model_cfg['head']['num_classes']
        with torch.no_grad():
            assert model(torch.rand(1, 3, 32, 32)).shape == (1, expected), \
                path


# ---------------------------------------------------------------------------
# ImageClassificationInferencer
# ---------------------------------------------------------------------------
def test_image_classification_inferencer(demo_config, demo_checkpoint,
                                         demo_classes, demo_data, tmp_path,
                                         mmpretrain_scope):
    from mmpretrain import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(
        str(demo_config), pretrained=str(demo_checkpoint), device='cpu')
    assert list(inferencer.classes) == demo_classes
    images = _images(demo_data)
    results = inferencer(images, show_dir=str(tmp_path / 'vis'))
    assert len(results) == len(images)
    # mmprompt's own inferencer on the same checkpoint.
    from mmprompt.apis import PromptInferencer
    expected = PromptInferencer(
        str(demo_config), str(demo_checkpoint), class_names=demo_classes)(
            images)
    for result, mine in zip(results, expected):
        assert result['pred_scores'].shape == (len(demo_classes), )
        assert result['pred_class'] == demo_classes[result['pred_label']]
        assert result['pred_label'] == mine['pred_label']
        assert result['pred_score'] == pytest.approx(
            mine['pred_score'], abs=1e-4)
    assert len(list((tmp_path / 'vis').glob('*.png'))) == len(images)


# ---------------------------------------------------------------------------
# What mmpretrain's tools build from a config, on every config
# ---------------------------------------------------------------------------
def _dataset_cfgs(cfg):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is not None:
            yield loader, cfg[loader].dataset


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[str(p.relative_to(REPO)) for p in CONFIGS])
def test_mmpretrain_scope_resolves_mmprompt_classes(path, tmp_path,
                                                    mmpretrain_scope):
    """The classes mmengine's build_from_cfg picks for the config's model
    and datasets from mmpretrain's registries under mmpretrain's scope
    (get_model, browse_dataset, analyze_results, confusion_matrix), and the
    visualizer browse_dataset makes from ``cfg.visualizer``."""
    from mmpretrain.registry import DATASETS, MODELS
    from mmpretrain.visualization import UniversalVisualizer

    import mmprompt.registry as mine
    cfg = Config.fromfile(str(path))
    with MODELS.switch_scope_and_registry(
            cfg.model.get('_scope_')) as registry:
        assert registry is mine.MODELS, path
        assert registry.get(cfg.model.type) is mine.MODELS.get(cfg.model.type)
    for loader, dataset in _dataset_cfgs(cfg):
        with DATASETS.switch_scope_and_registry(
                dataset.get('_scope_')) as registry:
            assert registry is mine.DATASETS, (path, loader)
    visualizer = dict(cfg.visualizer)
    visualizer.pop('type')
    UniversalVisualizer(
        name=f'compat-{path.stem}', save_dir=str(tmp_path), **visualizer)


def _mmpretrain_train_script():
    path = mim_tool('train.py')
    spec = importlib.util.spec_from_file_location('mmpretrain_train', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_args(config, **kwargs):
    args = dict(
        config=str(config),
        work_dir=None,
        resume=None,
        amp=False,
        no_validate=False,
        auto_scale_lr=False,
        no_pin_memory=False,
        no_persistent_workers=False,
        cfg_options=None,
        launcher='none')
    args.update(kwargs)
    return argparse.Namespace(**args)


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[str(p.relative_to(REPO)) for p in CONFIGS])
def test_train_script_dataloader_settings(path):
    """mmpretrain's tools/train.py turns persistent_workers on unless a
    config says otherwise: PyTorch refuses that without worker processes."""
    train = _mmpretrain_train_script()
    cfg = train.merge_args(Config.fromfile(str(path)), _train_args(path))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is None:
            continue
        settings = cfg[loader]
        assert settings.num_workers > 0 or not settings.persistent_workers, \
            (path, loader)


def test_train_script_dataloader_builds_on_the_demo(demo_config, tmp_path):
    from mmengine.runner import Runner
    train = _mmpretrain_train_script()
    cfg = train.merge_args(
        Config.fromfile(str(demo_config)),
        _train_args(demo_config, work_dir=str(tmp_path)))
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=1)
    batch = next(iter(loader))
    assert batch['inputs'][0].shape == (3, 32, 32)


def test_tensorboard_from_the_command_line(demo_config, tmp_path,
                                           mmpretrain_scope):
    """--cfg-options visualizer.vis_backends.0.type=TensorboardVisBackend
    switches TensorBoard on (mmpretrain's tools/train.py parses it)."""
    from mmengine.visualization import TensorboardVisBackend
    from mmpretrain.registry import VISUALIZERS
    train = _mmpretrain_train_script()
    import sys
    argv = sys.argv
    sys.argv = [
        'train.py',
        str(demo_config), '--cfg-options',
        'visualizer.vis_backends.0.type=TensorboardVisBackend'
    ]
    try:
        args = train.parse_args()
    finally:
        sys.argv = argv
    cfg = train.merge_args(Config.fromfile(str(demo_config)), args)
    visualizer = VISUALIZERS.build(
        dict(cfg.visualizer, name='compat-tensorboard', save_dir=tmp_path))
    assert any(
        isinstance(b, TensorboardVisBackend)
        for b in visualizer._vis_backends.values())
