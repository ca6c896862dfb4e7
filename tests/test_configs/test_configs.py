# Copyright (c) mmprompt contributors. All rights reserved.
"""Every config under configs/ loads, builds and follows the protocol.

configs/ holds ``_base_`` primitives and one config per model-zoo row (each
listed in its folder's metafile.yml); shots, seeds, backbones and base/new
testing are ``--cfg-options`` (tools/run_sweep.py sets them, see
tests/test_workflows/test_run_sweep.py). Models are built with the tiny
random-weight ``mmprompt-tiny-vit`` CLIP (no download), datasets on tiny
generated trees in the original layouts. Configs sharing a model or a
dataset config are built once.
"""
import copy
import json
import math
import os
import re
import tempfile
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_ROOT = REPO_ROOT / 'configs'
METHODS = ('coop', 'cocoop', 'zeroshot', 'linear_probe', 'kgcoop', 'prograd',
           'lpp', 'clip_adapter', 'maple', 'ivlp', 'promptsrc', 'tip_adapter')

ALL_CONFIG_FILES = sorted(
    str(p.relative_to(CONFIG_ROOT)) for p in CONFIG_ROOT.rglob('*.py')
    if '_base_' not in p.parts)
# configs/demo/ holds the embedded demo (tiny CLIP, generated data, its own
# tests): it only has to load here.
CONFIG_FILES = [f for f in ALL_CONFIG_FILES if not f.startswith('demo/')]
DATASET_BASES = sorted(
    str(p.relative_to(CONFIG_ROOT))
    for p in (CONFIG_ROOT / '_base_' / 'datasets').glob('*.py')
    if p.name != 'pipelines.py')

# Independent of the configs: class counts of the CoOp datasets.
NUM_CLASSES = {
    'ImageNet': 1000,
    'Caltech101': 100,
    'OxfordPets': 37,
    'StanfordCars': 196,
    'OxfordFlowers': 102,
    'Food101': 101,
    'FGVCAircraft': 100,
    'SUN397': 397,
    'DescribableTextures': 47,
    'EuroSAT': 10,
    'UCF101': 101,
    'ImageNetV2': 1000,
    'ImageNetSketch': 1000,
    'ImageNetA': 200,
    'ImageNetR': 200
}
NAME_RE = re.compile(
    r'^(?P<alg>(coop|cocoop|zeroshot|linear-probe|kgcoop|prograd|lpp'
    r'|clip-adapter|tip-adapter|maple|ivlp|promptsrc)[a-z0-9-]*)_'
    r'(?P<backbone>resnet50|resnet101|vit-base-p32|vit-base-p16)_'
    r'clip-openai_'
    r'((?P<schedule>1xb(?P<batch>\d+)-ep(?P<epochs>\d+))_)?'
    r'(?P<data>[a-z0-9-]+)$')
ARCHS = {
    'resnet50': 'RN50',
    'resnet101': 'RN101',
    'vit-base-p32': 'ViT-B-32',
    'vit-base-p16': 'ViT-B-16'
}


def _images(dataset: dict) -> dict:
    """The image dataset of a loader's dataset: itself, or the one a
    ``CachedFeatureDataset`` (methods on cached features) wraps."""
    if dataset.get('type') == 'CachedFeatureDataset':
        return dataset['dataset']
    return dataset


def _on_features(cfg) -> bool:
    """A method on cached CLIP features (linear probe, adapters)."""
    return cfg.get('model', {}).get('type') == 'AdapterClassifier'


@pytest.fixture(scope='module')
def configs():
    """All configs, loaded once (mmengine writes temp files per load)."""
    old = tempfile.tempdir
    # Loading ~600 configs is dominated by mmengine's temporary files;
    # a memory file system makes it several times faster.
    if os.access('/dev/shm', os.W_OK):
        tempfile.tempdir = '/dev/shm'
    try:
        loaded = {
            rel:
            Config.fromfile(str(CONFIG_ROOT / rel), format_python_code=False)
            for rel in ALL_CONFIG_FILES
        }
    finally:
        tempfile.tempdir = old
    return loaded


def _metafile_configs(method: str) -> list:
    meta = (CONFIG_ROOT / method / 'metafile.yml').read_text()
    assert meta.startswith('Collections:')
    return re.findall(r'Config: (\S+)', meta)


def test_one_config_per_model_zoo_row():
    listed = []
    for method in METHODS:
        folder = CONFIG_ROOT / method
        assert (folder / 'README.md').is_file()
        rows = _metafile_configs(method)
        assert len(rows) == len(set(rows)), method
        files = sorted(f'configs/{method}/{p.name}'
                       for p in folder.glob('*.py'))
        assert sorted(rows) == files, (
            f'configs/{method}: every config is a metafile row and every '
            'row has its config')
        listed += rows
    assert 40 <= len(listed) <= 150


def test_config_names(configs):
    for rel in CONFIG_FILES:
        folder, _, fname = rel.rpartition('/')
        if not folder:
            assert fname in ('coop_vit-b16.py', 'cocoop_vit-b16.py',
                             'kgcoop_vit-b16.py', 'prograd_vit-b16.py',
                             'maple_vit-b16.py', 'ivlp_vit-b16.py',
                             'promptsrc_vit-b16.py', 'linear-probe_vit-b16.py',
                             'tip-adapter-f_vit-b16.py'), rel
            continue
        match = NAME_RE.match(fname[:-3])
        assert match, f'{rel} does not follow the naming scheme'
        alg = match['alg']
        assert alg.replace('-', '_').startswith(folder), rel
        cfg = configs[rel]
        assert cfg.model.clip.arch == ARCHS[match['backbone']], rel
        if match['schedule']:
            assert cfg.train_dataloader.batch_size == int(match['batch'])
            assert cfg.train_cfg.max_epochs == int(match['epochs'])
        shots = re.match(r'(base2new-)?(\d+)shot', match['data'])
        if shots:
            assert _images(cfg.train_dataloader.dataset).num_shots == int(
                shots[2])
        if match['data'].startswith('base2new-'):
            assert _images(
                cfg.test_dataloader.dataset).subsample_classes == 'base'


def _mine(configs):
    return [(rel, configs[rel]) for rel in CONFIG_FILES]


def test_common_fields(configs):
    for rel, cfg in _mine(configs):
        assert cfg.default_scope == 'mmprompt', rel
        assert cfg.custom_imports == dict(
            imports=['mmprompt'], allow_failed_imports=False), rel
        hooks = [h['type'] for h in cfg.custom_hooks]
        assert 'ClassNamesHook' in hooks, rel
        if _on_features(cfg):
            # features extracted once, into the cache
            assert 'FeatureCacheHook' in hooks, rel
            assert cfg.train_cfg.type == 'AdapterTrainLoop', rel
        else:
            assert cfg.model.type == 'PromptClassifier', rel
        assert cfg.model.clip.pretrained == 'openai'
        assert cfg.model.data_preprocessor.to_rgb
        assert cfg.default_hooks.checkpoint == dict(
            type='SafeCheckpointHook',
            interval=1,
            max_keep_ckpts=2,
            save_last=True), rel
        assert cfg.default_hooks.finite_loss == dict(
            type='FiniteLossHook'), rel
        assert cfg.test_dataloader.batch_size == 100, rel
        assert _images(cfg.test_dataloader.dataset).split == 'test', rel
        assert cfg.test_evaluator.type == 'Accuracy', rel
        assert cfg.test_cfg == dict(), rel
        val = [
            cfg.get('val_dataloader'),
            cfg.get('val_cfg'),
            cfg.get('val_evaluator')
        ]
        # mmengine wants all three or none.
        assert all(v is None for v in val) or all(v is not None
                                                  for v in val), rel


def _n_classes(dataset: dict) -> int:
    n = NUM_CLASSES[dataset['type']]
    sub = dataset.get('subsample_classes', 'all')
    return {
        'all': n,
        'base': math.ceil(n / 2),
        'new': n - math.ceil(n / 2)
    }[sub]


def _plain(value):
    """Config values as plain lists and dicts (tuples read as lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def test_pipelines_are_defined_once_and_verified(configs):
    """configs/_base_/datasets/pipelines.py is the one definition of the
    pipelines (tests/test_datasets/test_pipelines.py checks it against the
    original's torchvision transforms): no other config defines one, and
    every dataset config uses it."""
    base = Config.fromfile(
        str(CONFIG_ROOT / '_base_' / 'datasets' / 'pipelines.py'))
    train, test = _plain(base.train_pipeline), _plain(base.test_pipeline)
    tip_train = _plain(base.tip_train_pipeline)
    for path in CONFIG_ROOT.rglob('*.py'):
        rel = str(path.relative_to(CONFIG_ROOT))
        if rel.startswith('demo/') or path.name == 'pipelines.py':
            continue
        text = path.read_text()
        for transform in ('LoadImageFromFile', 'RandomResizedCrop',
                          'ResizeEdge', 'CenterCrop', 'PackInputs'):
            assert transform not in text, f'{rel} defines a pipeline'
    loaded = dict(configs)
    loaded.update((rel, Config.fromfile(str(CONFIG_ROOT / rel)))
                  for rel in DATASET_BASES)
    for rel, cfg in loaded.items():
        if rel.startswith('demo/'):
            continue
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            if cfg.get(loader) is None:
                continue
            expected = test
            if loader == 'train_dataloader':
                adapter = cfg.model.adapter.type if _on_features(cfg) \
                    else None
                # the linear probe extracts every split's features with the
                # test transform, as the original's feat_extractor.py; LP++
                # augments as Tip-Adapter, whose data code it copies
                expected = {
                    'LogisticRegressionProbe': test,
                    'LPPlusPlus': tip_train,
                    'TipAdapter': tip_train
                }.get(adapter, train)
            pipeline = _plain(_images(cfg[loader].dataset).pipeline)
            assert pipeline == expected, (rel, loader)


def test_training_protocol(configs):
    for rel, cfg in _mine(configs):
        train = cfg.get('train_dataloader')
        if train is None:
            assert rel.startswith('zeroshot/'), rel
            assert cfg.get('train_cfg') is None
            continue
        ds = _images(train.dataset)
        assert ds.split == 'train'
        assert train.sampler == dict(type='DefaultSampler', shuffle=True)
        if cfg.get('val_dataloader') is not None:
            val = _images(cfg.val_dataloader.dataset)
            assert val.split == 'val' and val.num_shots == ds.num_shots
            assert val.subsample_classes == ds.subsample_classes, rel
        else:
            assert ds.type == 'ImageNet', rel
        if _on_features(cfg):
            _check_feature_protocol(rel, cfg, train, ds)
            continue
        # The original's drop_last = len(dataset) >= batch_size.
        n_train = _n_classes(ds) * ds.num_shots
        assert train.drop_last == (n_train >= train.batch_size), rel
        epochs = cfg.train_cfg.max_epochs
        assert cfg.train_cfg.val_interval == epochs, rel
        head = cfg.model.head
        optim_wrapper = cfg.optim_wrapper.to_dict()
        if head.type == 'DeepPromptHead':
            _check_deep_prompt_protocol(rel, cfg, train, ds, epochs)
            continue
        if head.type == 'PromptSRCHead':
            _check_promptsrc_protocol(rel, cfg, train, ds, epochs)
            continue
        if head.type == 'ProGradHead':
            # the original's base2new_train_prograd.sh: rn50_ep100 (ImageNet
            # rn50_ep50), 4 shots, N_CTX 16 from the template, λ 1, T 1
            assert optim_wrapper.pop('type') == 'ProGradOptimWrapper'
            assert optim_wrapper.pop('lambda_') == 1.0, rel
            assert train.batch_size == 32 and ds.num_shots == 4, rel
            assert epochs == (50 if ds.type == 'ImageNet' else 100), rel
            assert cfg.model.clip.arch == ('ViT-B-16'
                                           if rel.startswith('prograd_vit-b16')
                                           else 'RN50'), rel
            assert head.prompt_learner == dict(
                type='ProGradPromptLearner',
                n_ctx=16,
                ctx_init=True,
                csc=False,
                class_token_position='end'), rel
            assert head.temperature == 1.0, rel
            assert head.template_table == 'prograd', rel
            assert head.templates == ds.type, rel
        assert optim_wrapper == dict(
            optimizer=dict(
                type='SGD',
                lr=0.002,
                momentum=0.9,
                weight_decay=5e-4,
                dampening=0,
                nesterov=False)), rel
        assert cfg.param_scheduler == dict(
            type='ConstantWarmupCosineLR',
            T_max=epochs,
            warmup_lr=1e-5,
            warmup_epochs=1,
            by_epoch=True), rel
        if head.type == 'ProGradHead':
            continue
        if head.type == 'KgCoOpHead':
            # the original's vit_b16_ep100_ctxv1 with its scripts' W
            assert train.batch_size == 128 and epochs == 100, rel
            assert head.prompt_learner == dict(
                type='CoOpPromptLearner',
                n_ctx=4,
                ctx_init='a photo of a',
                csc=False,
                class_token_position='end'), rel
            assert head.kg_weight == 8.0 and ds.num_shots == 16, rel
            assert head.template_table == 'kgcoop', rel
            assert head.templates == ds.type, rel
            continue
        if head.type == 'CoCoOpHead':
            assert train.batch_size == 1 and epochs == 10, rel
            assert head.prompt_learner == dict(
                type='CoCoOpPromptLearner', n_ctx=4,
                ctx_init='a photo of a'), rel
            continue
        assert head.type == 'CoOpHead' and train.batch_size == 32, rel
        if ds.type == 'ImageNet':
            assert epochs == 50, rel
        elif '/coop-ctxinit_' in '/' + rel:
            assert epochs == 200, rel
        else:
            want = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}[ds.num_shots]
            assert epochs == want, rel


def _check_deep_prompt_protocol(rel, cfg, train, ds, epochs) -> None:
    """MaPLe's and IVLP's base-to-new defaults (vit_b16_c2_ep5_batch4_2ctx,
    IVLP/vit_b16_c2_ep5_batch4_2+2ctx): 16 shots, batch 4, SGD lr 0.0035,
    5 epochs after a constant 1e-5 epoch, fp16 rounding of the prompts."""
    learner = cfg.model.head.prompt_learner
    assert train.batch_size == 4 and epochs == 5, rel
    assert ds.num_shots == 16, rel
    assert cfg.model.clip.arch == 'ViT-B-16', rel
    assert cfg.optim_wrapper.to_dict() == dict(
        optimizer=dict(
            type='SGD',
            lr=0.0035,
            momentum=0.9,
            weight_decay=5e-4,
            dampening=0,
            nesterov=False)), rel
    assert cfg.param_scheduler == dict(
        type='ConstantWarmupCosineLR',
        T_max=epochs,
        warmup_lr=1e-5,
        warmup_epochs=1,
        by_epoch=True), rel
    expected = dict(
        type='MaPLePromptLearner',
        n_ctx=2,
        ctx_init='a photo of a',
        depth=9,
        fp16_rounding=True) if rel.startswith('maple') else dict(
            type='IVLPPromptLearner',
            n_ctx=2,
            ctx_init='a photo of a',
            text_depth=12,
            n_vision_ctx=2,
            vision_depth=12,
            fp16_rounding=True)
    assert learner == expected, rel


def _check_promptsrc_protocol(rel, cfg, train, ds, epochs) -> None:
    """PromptSRC's base-to-new default (vit_b16_c2_ep20_batch4_4+4ctx): 16
    shots, batch 4, SGD lr 0.0025, 20 epochs after a constant 1e-5 epoch,
    IVLP 4+4 at depth 9, λ 25 / 10, the 60 templates, GPA mean 15 std 1."""
    head = cfg.model.head
    assert train.batch_size == 4 and epochs == 20, rel
    assert ds.num_shots == 16, rel
    assert cfg.model.clip.arch == 'ViT-B-16', rel
    assert cfg.optim_wrapper.to_dict() == dict(
        optimizer=dict(
            type='SGD',
            lr=0.0025,
            momentum=0.9,
            weight_decay=5e-4,
            dampening=0,
            nesterov=False)), rel
    assert cfg.param_scheduler == dict(
        type='ConstantWarmupCosineLR',
        T_max=epochs,
        warmup_lr=1e-5,
        warmup_epochs=1,
        by_epoch=True), rel
    assert head.prompt_learner == dict(
        type='IVLPPromptLearner',
        n_ctx=4,
        ctx_init='a photo of a',
        text_depth=9,
        n_vision_ctx=4,
        vision_depth=9,
        fp16_rounding=True), rel
    assert (head.text_loss_weight, head.image_loss_weight) == (25, 10), rel
    assert head.templates == 'imagenet-60' and head.teacher_fp16_rounding
    assert cfg.custom_hooks == [
        dict(type='ClassNamesHook'),
        dict(type='GaussianPromptAggregationHook', mean=15, std=1)
    ], rel


# Tip-Adapter's configs/<dataset>.yaml, read independently of the configs:
# search_scale [beta_max, alpha_max], init_alpha, train_epoch.
TIP_SETTINGS = {
    'ImageNet': (7, 3, 1.17, 20),
    'Caltech101': (12, 5, 3, 20),
    'DescribableTextures': (13, 13, 2, 20),
    'EuroSAT': (12, 10, 2, 100),
    'FGVCAircraft': (30, 30, 5, 20),
    'Food101': (10, 10, 1.17, 20),
    'OxfordFlowers': (50, 50, 10, 20),
    'OxfordPets': (7, 3, 1.17, 20),
    'StanfordCars': (20, 10, 3, 20),
    'SUN397': (12, 10, 1.17, 20),
    'UCF101': (7, 3, 3, 20),
}


def _check_tip_adapter(rel, cfg, train, ds) -> None:
    """Tip-Adapter(-F): the original's per-dataset settings, 10 cached
    views, AdamW with torch's default weight decay, the search never on
    test data (ImageNet, without a val split: no search)."""
    adapter = cfg.model.adapter
    loop = cfg.train_cfg
    beta_max, alpha_max, alpha, epochs = TIP_SETTINGS[ds.type]
    assert adapter.alpha == alpha and adapter.beta == 1.0, rel
    assert adapter.logit_scale == 100. and adapter.precision == 'fp32', rel
    if ds.type == 'ImageNet':
        assert adapter.search is None and loop.search_split == 'train', rel
        assert cfg.model.text.templates == 'imagenet-7', rel
    else:
        assert adapter.search == dict(
            alpha_max=alpha_max,
            alpha_steps=20,
            beta_max=beta_max,
            beta_steps=200), rel
        assert loop.search_split == 'val', rel
        assert cfg.model.text.templates == ds.type, rel
    assert train.dataset.views == 10 and ds.num_shots == 16, rel
    assert train.batch_size == 256 and not train.drop_last, rel
    if adapter.finetune:
        assert loop.max_epochs == epochs == loop.val_interval, rel
        assert cfg.optim_wrapper.optimizer == dict(
            type='AdamW', lr=0.001, eps=1e-4, weight_decay=0.01), rel
        sched = cfg.param_scheduler
        assert sched.type == 'CosineAnnealingLR' and sched.T_max == epochs
        assert sched.convert_to_iter_based and sched.eta_min == 0, rel
    else:
        assert loop.max_epochs == 0, rel


def _check_feature_protocol(rel, cfg, train, ds) -> None:
    """The methods on cached features: each split's features extracted
    once (one view of the test transform for the probe), the search never
    on test data."""
    adapter = cfg.model.adapter
    loop = cfg.train_cfg
    assert loop.search_split in ('train', 'val'), rel
    # a search on val needs the val loader; ImageNet has none
    assert (loop.search_split == 'val') == (cfg.get('val_dataloader')
                                            is not None), rel
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is not None:
            assert cfg[loader].dataset.type == 'CachedFeatureDataset', rel
            assert cfg[loader].num_workers == 0, rel
            assert not cfg[loader].persistent_workers, rel
    if adapter.type == 'LogisticRegressionProbe':
        # lpclip/linear_probe.py: 8 search steps, max_iter 1000, C on the
        # val features (ImageNet: the training features, its val split
        # being the test set)
        assert adapter.search_steps == 8 and adapter.max_iter == 1000, rel
        assert adapter.search_split == loop.search_split, rel
        assert loop.max_epochs == 0 and loop.val_interval == 1, rel
        assert train.dataset.get('views', 1) == 1, rel
        assert not train.drop_last, rel
        assert ds.num_shots == 16, rel
    elif adapter.type == 'TipAdapter':
        _check_tip_adapter(rel, cfg, train, ds)
    elif adapter.type == 'LPPlusPlus':
        # configs/base.yaml: 300 epochs, one augmented view, 4 shots, RN50;
        # the epoch chosen on the val features (a K-shot val set)
        assert adapter.epochs == 300 and adapter.alpha_every == 10, rel
        assert adapter.alpha_scale == 250.0 and adapter.momentum == 0.9, rel
        assert adapter.alpha_grad == 'accumulated', rel
        assert loop.max_epochs == 0 and loop.search_split == 'val', rel
        assert train.dataset.views == 1 and ds.num_shots == 4, rel
        assert cfg.model.clip.arch == 'RN50', rel
        assert cfg.model.text.templates == ds.type, rel
    elif adapter.type == 'CLIPAdapter':
        # the original's ratio and reduction; CoOp's trainer settings
        assert adapter.ratio == 0.2 and adapter.reduction == 4, rel
        assert 'in_channels' not in adapter, rel  # the CLIP's width
        assert cfg.model.text.templates == ds.type, rel
        assert train.batch_size == 32, rel
        n_train = _n_classes(ds) * ds.num_shots
        assert train.drop_last == (n_train >= train.batch_size), rel
        assert cfg.optim_wrapper.optimizer == dict(
            type='SGD',
            lr=0.002,
            momentum=0.9,
            weight_decay=5e-4,
            dampening=0,
            nesterov=False), rel
        assert cfg.param_scheduler.T_max == loop.max_epochs == \
            loop.val_interval, rel


def test_representative_protocols(configs):
    coop = configs['coop_vit-b16.py']
    assert coop.model.head.prompt_learner == dict(
        type='CoOpPromptLearner',
        n_ctx=16,
        ctx_init='',
        csc=False,
        class_token_position='end')
    assert coop.train_dataloader.batch_size == 32
    assert coop.train_cfg.max_epochs == 200
    assert coop.model.clip.arch == 'ViT-B-16'
    assert coop.model.clip.get('precision', 'fp32') == 'fp32'
    for loader in ('train', 'val', 'test'):
        dataset = coop[f'{loader}_dataloader'].dataset
        assert dataset.type == 'OxfordPets'
        assert dataset.subsample_classes == 'all'
    assert coop.train_dataloader.dataset.num_shots == 16

    cocoop = configs['cocoop/cocoop_vit-base-p16_clip-openai_1xb1-ep10_'
                     'base2new-16shot-oxford-pets.py']
    assert cocoop.train_dataloader.batch_size == 1
    assert cocoop.train_cfg.max_epochs == 10
    assert cocoop.param_scheduler.T_max == 10
    for loader in ('train', 'val', 'test'):
        dataset = cocoop[f'{loader}_dataloader'].dataset
        assert dataset.subsample_classes == 'base'
    assert configs['cocoop_vit-b16.py'].to_dict() == cocoop.to_dict()

    imagenet = configs['coop/coop_resnet50_clip-openai_1xb32-ep50_'
                       '16shot-imagenet.py']
    assert imagenet.train_cfg.max_epochs == 50
    assert imagenet.param_scheduler.T_max == 50
    assert imagenet.model.clip.arch == 'RN50'
    assert imagenet.get('val_dataloader') is None
    m4 = configs['coop/coop-m4_resnet50_clip-openai_1xb32-ep50_'
                 '16shot-imagenet.py']
    assert m4.model.head.prompt_learner.n_ctx == 4
    assert m4.model.clip.arch == 'RN50'

    ctxinit = configs['coop/coop-ctxinit_vit-base-p16_clip-openai_1xb32-'
                      'ep200_base2new-16shot-dtd.py']
    assert ctxinit.model.head.prompt_learner.n_ctx == 4
    assert ctxinit.model.head.prompt_learner.ctx_init == 'a photo of a'

    kgcoop = configs['kgcoop/kgcoop_vit-base-p16_clip-openai_1xb128-ep100_'
                     'base2new-16shot-oxford-pets.py']
    assert configs['kgcoop_vit-b16.py'].to_dict() == kgcoop.to_dict()
    assert kgcoop.model.head.templates == 'OxfordPets'
    assert kgcoop.param_scheduler.get('original_bug') is None
    for loader in ('train', 'val', 'test'):
        dataset = kgcoop[f'{loader}_dataloader'].dataset
        assert dataset.subsample_classes == 'base'
    eurosat = configs['kgcoop/kgcoop_vit-base-p16_clip-openai_1xb128-ep100_'
                      'base2new-16shot-eurosat.py']
    assert eurosat.train_dataloader.drop_last is False  # 5 x 16 < 128

    prograd = configs['prograd/prograd_resnet50_clip-openai_1xb32-ep100_'
                      'base2new-4shot-oxford-pets.py']
    entry = copy.deepcopy(configs['prograd_vit-b16.py'])
    assert entry.model.clip.arch == 'ViT-B-16'
    entry.model.clip.arch = 'RN50'
    assert entry.to_dict() == prograd.to_dict()
    assert prograd.model.head.templates == 'OxfordPets'
    assert prograd.train_dataloader.drop_last is True  # 19 x 4 >= 32
    for loader in ('train', 'val', 'test'):
        dataset = prograd[f'{loader}_dataloader'].dataset
        assert dataset.subsample_classes == 'base'
    eurosat = configs['prograd/prograd_resnet50_clip-openai_1xb32-ep100_'
                      'base2new-4shot-eurosat.py']
    assert eurosat.train_dataloader.drop_last is False  # 5 x 4 < 32
    imagenet = configs['prograd/prograd_resnet50_clip-openai_1xb32-ep50_'
                       'base2new-4shot-imagenet.py']
    assert imagenet.param_scheduler.T_max == imagenet.train_cfg.max_epochs
    assert imagenet.get('val_dataloader') is None

    zs = configs['zeroshot/zeroshot_vit-base-p16_clip-openai_'
                 'base2new-eurosat.py']
    assert zs.model.head.templates == 'EuroSAT'
    assert zs.get('train_dataloader') is None
    zs_imagenet = configs['zeroshot/zeroshot_resnet50_clip-openai_imagenet.py']
    assert zs_imagenet.model.head.templates == 'ImageNet'
    assert zs_imagenet.model.clip.arch == 'RN50'


def _override(cfg, *options):
    """A config with ``--cfg-options``, parsed as tools/train.py does."""
    import argparse

    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options', *options]).cfg_options)
    return cfg


def test_readme_overrides(configs):
    """The settings the READMEs give as --cfg-options reach the config."""
    row = configs['coop/coop_resnet50_clip-openai_1xb32-ep200_'
                  '16shot-caltech101.py']
    cfg = _override(row, 'train_dataloader.dataset.num_shots=1',
                    'val_dataloader.dataset.num_shots=1',
                    'train_cfg.max_epochs=50', 'train_cfg.val_interval=50',
                    'param_scheduler.T_max=50', 'model.clip.arch=RN101',
                    'randomness.seed=2', 'train_dataloader.dataset.seed=2',
                    'val_dataloader.dataset.seed=2',
                    'model.head.prompt_learner.csc=True',
                    'model.head.prompt_learner.num_classes=100')
    assert cfg.train_dataloader.dataset.num_shots == 1
    assert cfg.val_dataloader.dataset.seed == 2 and cfg.randomness.seed == 2
    assert cfg.param_scheduler.T_max == cfg.train_cfg.max_epochs == 50
    assert cfg.model.clip == dict(
        type='OpenCLIP', arch='RN101', pretrained='openai')
    assert cfg.model.head.prompt_learner.csc is True
    # A test on the new classes, or on another dataset.
    b2n = configs['cocoop/cocoop_vit-base-p16_clip-openai_1xb1-ep10_'
                  'base2new-16shot-dtd.py']
    new = _override(b2n, 'test_dataloader.dataset.subsample_classes=new')
    assert new.test_dataloader.dataset.subsample_classes == 'new'
    assert new.train_dataloader.dataset.subsample_classes == 'base'
    source = configs['cocoop/cocoop_vit-base-p16_clip-openai_1xb1-ep10_'
                     '16shot-imagenet.py']
    target = _override(
        source, 'test_dataloader.dataset.type=ImageNetA',
        'test_dataloader.dataset.data_root='
        'data/imagenet-adversarial')
    assert target.train_dataloader.dataset.type == 'ImageNet'
    imagenet_a = Config.fromfile(
        str(CONFIG_ROOT / '_base_' / 'datasets' / 'imagenet_a.py'))
    assert target.test_dataloader.to_dict() == \
        imagenet_a.test_dataloader.to_dict()
    # KgCoOp's few-shot setting and the old schedule (configs/kgcoop)
    kgcoop = configs['kgcoop_vit-b16.py']
    fewshot = _override(
        kgcoop, 'train_dataloader.batch_size=32',
        'train_dataloader.dataset.num_shots=4',
        'val_dataloader.dataset.num_shots=4',
        'train_dataloader.dataset.subsample_classes=all',
        'val_dataloader.dataset.subsample_classes=all',
        'test_dataloader.dataset.subsample_classes=all',
        'param_scheduler.original_bug=kgcoop_before_98d11b8_torch1x',
        'model.head.templates=imagenet-7')
    assert fewshot.train_dataloader.batch_size == 32
    assert fewshot.test_dataloader.dataset.subsample_classes == 'all'
    assert fewshot.param_scheduler.original_bug == \
        'kgcoop_before_98d11b8_torch1x'
    assert fewshot.model.head.templates == 'imagenet-7'
    # ProGrad's few-shot setting (configs/prograd/README.md)
    prograd = configs['prograd/prograd_resnet50_clip-openai_1xb32-ep100_'
                      'base2new-4shot-dtd.py']
    fewshot = _override(prograd, 'train_dataloader.dataset.num_shots=16',
                        'val_dataloader.dataset.num_shots=16',
                        'train_dataloader.dataset.subsample_classes=all',
                        'val_dataloader.dataset.subsample_classes=all',
                        'test_dataloader.dataset.subsample_classes=all',
                        'train_cfg.max_epochs=200',
                        'train_cfg.val_interval=200',
                        'param_scheduler.T_max=200',
                        'optim_wrapper.lambda_=0.8',
                        'model.head.temperature=2.0',
                        'model.head.prompt_learner.ctx_init=False')
    assert fewshot.optim_wrapper.lambda_ == 0.8
    assert fewshot.optim_wrapper.type == 'ProGradOptimWrapper'
    assert fewshot.param_scheduler.T_max == 200
    assert fewshot.model.head.temperature == 2.0
    assert fewshot.model.head.prompt_learner.ctx_init is False


# ---------------------------------------------------------------------------
# Building the models
# ---------------------------------------------------------------------------
def _tiny_model_cfg(model: dict) -> dict:
    model = copy.deepcopy(model)
    model['clip'].update(arch='mmprompt-tiny-vit', pretrained=None)
    learner = model.get('head', {}).get('prompt_learner', {})
    for depth in ('depth', 'text_depth', 'vision_depth'):
        if depth in learner:  # the tiny CLIP's towers have 2 blocks
            learner[depth] = min(learner[depth], 2)
    return model


def test_promptsrc_readme_overrides(configs):
    """PromptSRC's cross-dataset and few-shot settings as its README gives
    them: the depth, the aggregation's Gaussian (custom_hooks.1) and the
    schedule reach the config."""
    row = configs['promptsrc/promptsrc_vit-base-p16_clip-openai_1xb4-ep20_'
                  'base2new-16shot-imagenet.py']
    cross = _override(row, 'model.head.prompt_learner.text_depth=3',
                      'model.head.prompt_learner.vision_depth=3',
                      'custom_hooks.1.mean=6', 'custom_hooks.1.std=10',
                      'train_dataloader.dataset.subsample_classes=all',
                      'test_dataloader.dataset.subsample_classes=all')
    assert cross.custom_hooks[1] == dict(
        type='GaussianPromptAggregationHook', mean=6, std=10)
    learner = cross.model.head.prompt_learner
    assert (learner.text_depth, learner.vision_depth) == (3, 3)
    assert cross.train_dataloader.dataset.subsample_classes == 'all'
    pets = configs['promptsrc_vit-b16.py']
    fewshot = _override(pets, 'train_cfg.max_epochs=50',
                        'train_cfg.val_interval=50',
                        'param_scheduler.T_max=50', 'custom_hooks.1.mean=30',
                        'custom_hooks.1.std=30',
                        'train_dataloader.dataset.subsample_classes=all',
                        'val_dataloader.dataset.subsample_classes=all',
                        'test_dataloader.dataset.subsample_classes=all',
                        'train_dataloader.dataset.num_shots=4',
                        'val_dataloader.dataset.num_shots=4')
    assert fewshot.param_scheduler.T_max == fewshot.train_cfg.max_epochs == 50
    assert fewshot.custom_hooks[1].mean == 30
    assert fewshot.val_dataloader.dataset.num_shots == 4
    assert fewshot.custom_hooks[0] == dict(type='ClassNamesHook')


def test_models_build(configs):
    from mmprompt.models.heads.templates import resolve_templates
    from mmprompt.registry import MODELS
    unique = {}
    for rel, cfg in _mine(configs):
        model = _tiny_model_cfg(cfg.model.to_dict())
        if _on_features(cfg):
            # an unfitted adapter scores nothing: built here, fitted and run
            # in test_runner_fits_feature_configs
            from mmprompt.models.adapters import BaseAdapter
            built = MODELS.build(model)
            assert isinstance(built.adapter, BaseAdapter), rel
            assert not list(built.state_dict().keys()) or all(
                k.startswith('adapter.') for k in built.state_dict()), rel
            continue
        head = model['head']
        if head['type'] == 'ZeroShotHead':
            # Zero-shot heads differ only in their templates: check them
            # here and build one model of one and one of several templates.
            dataset = cfg.test_dataloader.dataset.type
            templates = resolve_templates(head['templates'])
            assert head['templates'] in (dataset, 'imagenet-80', 'imagenet-7',
                                         'imagenet-7+' + dataset), rel
            head['templates'] = ('a photo of a {}.'
                                 if len(templates) == 1 else 'imagenet-7')
        if head['type'] in ('KgCoOpHead', 'ProGradHead'):
            # The teacher's template: the trained dataset's, in the
            # method's table; one model of them is built.
            dataset = cfg.train_dataloader.dataset.type
            assert head['templates'] == dataset, rel
            assert resolve_templates(dataset, head['template_table'])
            head['templates'] = 'a photo of a {}.'
        unique.setdefault(repr(model), (rel, model))
    assert len(unique) < 30
    images = torch.rand(2, 3, 32, 32)
    for rel, model_cfg in unique.values():
        model = MODELS.build(model_cfg)
        pl = model_cfg['head'].get('prompt_learner', {})
        n = pl.get('num_classes') or 3
        model.set_class_names([f'class {i}' for i in range(n)])
        model.eval()
        with torch.no_grad():
            logits = model(images)
        assert logits.shape == (2, n), rel


# ---------------------------------------------------------------------------
# Building the datasets on tiny trees in the original layouts
# ---------------------------------------------------------------------------
TREE_CLASSES = ['class_a', 'class_b', 'class_c']
WNIDS = ['n01', 'n02', 'n03']


def _image(path: Path) -> str:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (8, 6), (10, 200, 30)).save(path)
    return path.name


def _split_json_tree(root: Path,
                     image_dir: str,
                     split_file: str,
                     prefix: str = '') -> None:
    split = {}
    for s, n in (('train', 2), ('val', 1), ('test', 1)):
        split[s] = []
        for label, name in enumerate(TREE_CLASSES):
            for i in range(n):
                rel = f'{prefix}{name}/{s}_{i}.jpg'
                _image(root / image_dir / rel)
                split[s].append([rel, label, name])
    (root / split_file).write_text(json.dumps(split))


def _classnames(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / 'classnames.txt').write_text(''.join(f'{w} name {w}\n'
                                                 for w in WNIDS))


def _make_tree(dataset_type: str, root: Path) -> None:
    split_json = {
        'Caltech101': '101_ObjectCategories',
        'OxfordPets': 'images',
        'StanfordCars': '',
        'OxfordFlowers': 'jpg',
        'Food101': 'images',
        'SUN397': 'SUN397',
        'DescribableTextures': 'images',
        'EuroSAT': '2750',
        'UCF101': 'UCF-101-midframes',
    }
    if dataset_type in split_json:
        prefix = 'cars_train/' if dataset_type == 'StanfordCars' else ''
        _split_json_tree(root, split_json[dataset_type],
                         f'split_zhou_{dataset_type}.json', prefix)
    elif dataset_type == 'FGVCAircraft':
        (root / 'images').mkdir(parents=True)
        (root / 'variants.txt').write_text(''.join(f'{c}\n'
                                                   for c in TREE_CLASSES))
        for s in ('train', 'val', 'test'):
            lines = []
            for c in TREE_CLASSES:
                _image(root / 'images' / f'{s}{c}.jpg')
                lines.append(f'{s}{c} {c}\n')
            (root / f'images_variant_{s}.txt').write_text(''.join(lines))
    elif dataset_type == 'ImageNet':
        _classnames(root)
        for s in ('train', 'val'):
            for w in WNIDS:
                _image(root / 'images' / s / w / f'{s}.JPEG')
    elif dataset_type == 'ImageNetV2':
        _classnames(root)
        for i in range(len(WNIDS)):
            _image(root / 'imagenetv2-matched-frequency-format-val' / str(i) /
                   'a.jpeg')
    else:
        _classnames(root)
        folder = {
            'ImageNetSketch': 'images',
            'ImageNetA': 'imagenet-a',
            'ImageNetR': 'imagenet-r'
        }[dataset_type]
        for w in WNIDS:
            _image(root / folder / w / 'a.jpg')


@pytest.fixture(scope='module')
def dataset_trees(tmp_path_factory):
    base = tmp_path_factory.mktemp('config_datasets')
    roots = {}
    for dataset_type in NUM_CLASSES:
        roots[dataset_type] = base / dataset_type
        _make_tree(dataset_type, roots[dataset_type])
    return roots


def _dataset_cfgs(cfg):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is not None:
            yield loader, _images(cfg[loader].dataset.to_dict())


def test_datasets_build(configs, dataset_trees):
    from mmprompt.registry import DATASETS
    unique = {}
    bases = [(rel, Config.fromfile(str(CONFIG_ROOT / rel)))
             for rel in DATASET_BASES]
    for rel, cfg in _mine(configs) + bases:
        for loader, ds in _dataset_cfgs(cfg):
            assert ds['data_root'].startswith('data/'), rel
            key = json.dumps(ds, sort_keys=True)
            unique.setdefault(key, (rel, loader, ds))
    fetched = set()
    for rel, loader, ds in unique.values():
        # serialize_data=False: mmengine's serialisation runs gc.collect(),
        # slow with hundreds of configs in memory.
        ds = dict(
            ds, data_root=str(dataset_trees[ds['type']]), serialize_data=False)
        dataset = DATASETS.build(ds)
        n = len(TREE_CLASSES)
        want = {'all': n, 'base': 2, 'new': 1}[ds['subsample_classes']]
        assert len(dataset.metainfo['classes']) == want, (rel, loader)
        assert len(dataset) > 0, (rel, loader)
        assert dataset.split == loader.split('_')[0]
        # Run each distinct pipeline once on a real image.
        pipeline = json.dumps(ds['pipeline'], sort_keys=True)
        if pipeline not in fetched:
            fetched.add(pipeline)
            sample = dataset[0]
            assert sample['inputs'].shape == (3, 224, 224), rel


# ---------------------------------------------------------------------------
# The runner: the entry config trains, a zero-shot config tests
# ---------------------------------------------------------------------------
def _tiny_runner_cfg(cfg, trees, work_dir):
    cfg = copy.deepcopy(cfg)
    cfg.model = _tiny_model_cfg(cfg.model.to_dict())
    tiny = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(32, 32)),
        dict(type='PackInputs')
    ]
    for loader, _ in list(_dataset_cfgs(cfg)):
        images = _images(cfg[loader].dataset)
        images.data_root = str(trees[images.type])
        images.pipeline = tiny
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].batch_size = min(cfg[loader].batch_size, 4)
        if loader == 'train_dataloader':
            cfg[loader].drop_last = False
    cfg.work_dir = str(work_dir)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    if cfg.get('train_cfg') is not None and cfg.train_cfg.max_epochs:
        cfg.train_cfg.max_epochs = 2
        cfg.train_cfg.val_interval = 2
        cfg.param_scheduler.T_max = 2
    return cfg


def test_runner_trains_entry_configs(configs, dataset_trees, tmp_path):
    from mmengine.runner import Runner
    for rel in ('coop_vit-b16.py', 'cocoop_vit-b16.py', 'kgcoop_vit-b16.py',
                'prograd_vit-b16.py'):
        cfg = _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / rel)
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.test()
        assert 'accuracy/top1' in metrics
        # A checkpoint after every epoch, the last two kept.
        assert (tmp_path / rel / 'epoch_1.pth').is_file()
        assert (tmp_path / rel / 'epoch_2.pth').is_file()
        lrs = runner.param_schedulers[0].lr_at(0, 0.002)
        assert lrs == 1e-5


def test_runner_trains_promptsrc_entry_config(configs, dataset_trees,
                                              tmp_path):
    """PromptSRC's entry config through the Runner: the four loss terms
    logged, the prompts aggregated over the epochs by its custom hook and
    the aggregate in the last checkpoint."""
    from mmengine.runner import Runner

    from mmprompt.utils import load_checkpoint_file
    rel = 'promptsrc_vit-b16.py'
    cfg = _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / rel)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert 'accuracy/top1' in runner.test()
    last = load_checkpoint_file(str(tmp_path / rel / 'epoch_2.pth'))
    state = last['gaussian_prompt_aggregation']
    assert state['epochs'] == [1, 2
                               ] and (state['mean'], state['std']) == (15, 1)
    ctx = 'head.prompt_learner.ctx'
    assert torch.equal(last['state_dict'][ctx], state['sum'][ctx])
    logged = runner.message_hub.log_scalars
    for term in ('loss', 'loss_scl_text', 'loss_scl_image', 'loss_scl_logits'):
        assert f'train/{term}' in logged, term


def test_runner_fits_feature_configs(configs, dataset_trees, tmp_path):
    """The linear probe's entry config through the Runner: features
    extracted once, the probe fitted with C chosen on the val split (said
    in adapter_choices.json), tested from the cache and from the
    checkpoint; a second run extracts nothing."""
    from mmengine.runner import Runner

    from mmprompt.utils import load_checkpoint_file
    pytest.importorskip('sklearn')  # the probe's optional dependency
    rel = 'linear-probe_vit-b16.py'
    cfg = _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / rel)
    runner = Runner.from_cfg(cfg)
    runner.train()
    choices = json.loads((tmp_path / rel / 'adapter_choices.json').read_text())
    assert choices['fit']['C']['split'] == 'val'
    assert choices['fit']['C']['value'] == runner.model.adapter.C.item()
    assert 'accuracy/top1' in runner.test()
    checkpoint = tmp_path / rel / 'epoch_1.pth'
    state = load_checkpoint_file(str(checkpoint))['state_dict']
    assert set(state) == {'adapter.weight', 'adapter.bias', 'adapter.C'}
    cache = sorted((tmp_path / rel / 'feature_cache').iterdir())
    assert len(cache) == 3  # train, val, test
    again = _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / rel)
    again.load_from = str(checkpoint)
    mtimes = [p.stat().st_mtime_ns for p in cache]
    assert 'accuracy/top1' in Runner.from_cfg(again).test()
    assert [p.stat().st_mtime_ns for p in cache] == mtimes


def test_runner_lpp_and_clip_adapter_configs(configs, dataset_trees, tmp_path):
    """LP++ is fitted with its epoch chosen on val (said so); CLIP-Adapter
    is trained by the runner on the cached views (its weights move, its
    width is the CLIP's, its checkpoint is the adapter) and tested."""
    from mmengine.runner import Runner
    rel = 'lpp/lpp_resnet50_clip-openai_4shot-oxford-pets.py'
    runner = Runner.from_cfg(
        _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / 'lpp'))
    runner.train()
    choices = json.loads(
        (tmp_path / 'lpp' / 'adapter_choices.json').read_text())
    assert choices['fit']['epoch']['split'] == 'val'
    assert runner.model.adapter.weight.shape == (3, 64)
    assert 'accuracy/top1' in runner.test()

    rel = ('clip_adapter/clip-adapter_resnet50_clip-openai_1xb32-ep50_'
           '16shot-imagenet.py')
    cfg = _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / 'ca')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.set_class_names(['a', 'b', 'c'])
    runner.train()
    adapter = model.adapter
    assert adapter.in_channels == 64  # the tiny CLIP's embed_dim
    assert adapter.logit_scale.item() == model.clip.logit_scale.item()
    init = torch.nn.Linear(64, 16, bias=False)
    assert adapter.fc[0].weight.shape == init.weight.shape
    # trained: the optimizer moved the parameters fit() gave their size
    state = runner.optim_wrapper.optimizer.state
    assert all(p in state for p in adapter.parameters())
    metrics = runner.test()
    assert 'accuracy/top1' in metrics
    assert set(model.state_dict()) == {
        'adapter.fc.0.weight', 'adapter.fc.2.weight', 'adapter.logit_scale'
    }
    # a fresh model (unbuilt adapter) takes the checkpoint's width
    again = _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / 'ca')
    again.load_from = str(tmp_path / 'ca' / 'epoch_2.pth')
    assert Runner.from_cfg(again).test() == metrics


def test_runner_trains_tip_adapter_configs(configs, dataset_trees, tmp_path):
    """Tip-Adapter-F's entry config through the Runner: 10 training views,
    val and test extracted once, the keys trained, alpha and beta chosen on
    the val split (said so), the checkpoint the cache; training-free
    Tip-Adapter saves its cache after one epoch without iterations."""
    from mmengine.runner import Runner

    from mmprompt.utils import load_checkpoint_file
    rel = 'tip-adapter-f_vit-b16.py'
    cfg = _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / 'f')
    runner = Runner.from_cfg(cfg)
    runner.train()
    adapter = runner.model.adapter
    assert adapter.cache_keys.shape == (6, 64)  # 3 classes x 2 images
    assert adapter.cache_keys in runner.optim_wrapper.optimizer.state
    choices = json.loads((tmp_path / 'f' / 'adapter_choices.json').read_text())
    assert {c['split'] for c in choices['search'].values()} == {'val'}
    assert choices['search']['alpha']['value'] == float(adapter.alpha)
    assert 'accuracy/top1' in runner.test()
    assert len(list((tmp_path / 'f' / 'feature_cache').iterdir())) == 12
    state = load_checkpoint_file(str(tmp_path / 'f' / 'epoch_2.pth'))
    assert set(state['state_dict']) == {
        'adapter.cache_keys', 'adapter.cache_values', 'adapter.alpha',
        'adapter.beta'
    }
    assert float(state['state_dict']['adapter.alpha']) == float(adapter.alpha)

    rel = 'tip_adapter/tip-adapter_resnet50_clip-openai_16shot-imagenet.py'
    cfg = _tiny_runner_cfg(configs[rel], dataset_trees, tmp_path / 'free')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert (tmp_path / 'free' / 'epoch_1.pth').is_file()
    assert not runner.model.adapter.trainable
    assert float(runner.model.adapter.alpha) == 1.17
    assert 'accuracy/top1' in runner.test()


def test_runner_tests_zero_shot_config(configs, dataset_trees, tmp_path):
    from mmengine.runner import Runner
    rel = 'zeroshot/zeroshot_vit-base-p16_clip-openai_base2new-dtd.py'
    # The new classes: the README's override of the base-class config.
    cfg = _override(configs[rel],
                    'test_dataloader.dataset.subsample_classes=new')
    runner = Runner.from_cfg(_tiny_runner_cfg(cfg, dataset_trees, tmp_path))
    metrics = runner.test()
    assert 'accuracy/top1' in metrics
    assert runner.model.class_names == ['class_c']


def test_configs_named_in_docs_exist():
    """Every ``configs/....py`` the docs name is there (``configs/mine`` and
    ``configs/my`` are the tutorials' files of the reader's own, and so is a
    file a tutorial block writes, ``<!-- docs-test: file configs/... -->``).
    """
    docs = [
        REPO_ROOT / 'README.md', *(REPO_ROOT / 'docs').rglob('*.md'),
        *CONFIG_ROOT.rglob('README.md')
    ]
    written = {
        rel
        for doc in docs
        for rel in re.findall(r'<!--\s*docs-test:\s*file\s+(configs/\S+\.py)',
                              doc.read_text())
    }
    missing = []
    for doc in docs:
        for rel in re.findall(r'configs/[\w/.-]+\.py', doc.read_text()):
            if rel.startswith(('configs/mine/', 'configs/my/')) or \
                    rel in written:
                continue
            if not (REPO_ROOT / rel).is_file():
                missing.append(f'{doc.relative_to(REPO_ROOT)}: {rel}')
    assert not missing, missing
