# Copyright (c) mmprompt contributors. All rights reserved.
"""Tip-Adapter-F under DDP: each process extracts its share of the
features, the cache holds them in dataset order, and 2 processes train the
keys to where 1 process does at the same global batch.

``tools/train.py`` under torchrun, 2 CPU processes (gloo) at batch 2 each,
against 1 process at batch 4, each with its own cache folder.
"""
from pathlib import Path

import torch
from reliability_testing import (finish, make_image_tree, start_torchrun,
                                 start_train)

from mmprompt.utils import load_checkpoint_file

CONFIG = '''\
default_scope = 'mmprompt'
custom_imports = dict(imports=['mmprompt'], allow_failed_imports=False)

model = dict(
    type='AdapterClassifier',
    clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
    adapter=dict(
        type='TipAdapter',
        finetune=True,
        search=dict(alpha_max=5., alpha_steps=4, beta_max=5., beta_steps=4)))

train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.0),
         backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=32),
    dict(type='PackInputs'),
]


def _loader(split, pipeline, batch_size, views=1, shuffle=False):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=shuffle, seed=0),
        dataset=dict(
            type='CachedFeatureDataset',
            views=views,
            dataset=dict(
                type='SplitJsonDataset',
                data_root={data_root!r},
                split_file='split.json',
                image_dir='images',
                split=split,
                pipeline=pipeline)))


train_dataloader = _loader('train', train_pipeline, {batch_size}, 3, True)
val_dataloader = _loader('val', test_pipeline, 4)
del _loader
val_evaluator = dict(type='Accuracy', topk=(1, ))
val_cfg = dict()

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=0.05, eps=1e-4, weight_decay=0.01))
param_scheduler = dict(
    type='CosineAnnealingLR', T_max=2, by_epoch=True,
    convert_to_iter_based=True)
train_cfg = dict(type='AdapterTrainLoop', max_epochs=2, val_interval=2)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='ClassNamesHook'),
                dict(type='FeatureCacheHook', batch_size=3)]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, deterministic=True)
log_level = 'INFO'
load_from = None
resume = False
'''


def _cache(work_dir: Path) -> dict:
    files = {}
    for path in (work_dir / 'feature_cache').iterdir():
        stored = torch.load(path, weights_only=True)
        files[stored['key']] = stored['features']
    return files


def _keys(path: Path) -> torch.Tensor:
    return load_checkpoint_file(str(path))['state_dict']['adapter.cache_keys']


def test_two_processes_extract_and_train_as_one(tmp_path):
    data = make_image_tree(tmp_path / 'data')
    one, two = tmp_path / 'one.py', tmp_path / 'two.py'
    one.write_text(CONFIG.format(batch_size=4, data_root=str(data)))
    two.write_text(CONFIG.format(batch_size=2, data_root=str(data)))
    single = start_train([str(one), '--work-dir',
                          str(tmp_path / 'one')], tmp_path)
    dist = start_torchrun(2, [str(two), '--work-dir',
                              str(tmp_path / 'two')], tmp_path)
    log = finish(dist, timeout=500)
    assert dist.returncode == 0, log[-5000:]
    assert 'Distributed training: True' in log
    assert 'Epoch(train) [2][3/3]' in log  # 12 images / (2 x 2) per step
    single_log = finish(single, timeout=500)
    assert single.returncode == 0, single_log[-5000:]
    # The same 4 files (3 training views, val), the same features in the
    # same (dataset) order: 2 processes extracted a share each.
    a, b = _cache(tmp_path / 'one'), _cache(tmp_path / 'two')
    assert len(a) == 4 and set(a) == set(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    # Trained to the same keys (the fit, then DDP wrapped again).
    k1 = _keys(tmp_path / 'one' / 'epoch_2.pth')
    k2 = _keys(tmp_path / 'two' / 'epoch_2.pth')
    start = _keys(tmp_path / 'one' / 'epoch_1.pth')
    assert not torch.equal(k1, start)
    torch.testing.assert_close(
        k1, k2, rtol=0, atol=1e-5 * float(k1.abs().max()))
