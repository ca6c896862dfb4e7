# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP-Adapter under DDP: 2 processes equal 1 at the same global batch.

The adapter's layers get their width in ``fit``, after the runner has
wrapped the model; ``AdapterTrainLoop`` wraps it again so that DDP
averages their gradients. ``tools/train.py`` under torchrun with 2 CPU
processes (gloo) at batch 2 each, on cached augmented views, ends where 1
process at batch 4 ends.
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
    text=dict(templates='a photo of a {{}}.'),
    adapter=dict(type='CLIPAdapter', reduction=4, ratio=0.2))

pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='RandomResizedCrop', scale=32, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size={batch_size},
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
    dataset=dict(
        type='CachedFeatureDataset',
        views=2,
        dataset=dict(
            type='SplitJsonDataset',
            data_root={data_root!r},
            split_file='split.json',
            image_dir='images',
            split='train',
            pipeline=pipeline)))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='CosineAnnealingLR', T_max=2, by_epoch=True)
train_cfg = dict(
    type='AdapterTrainLoop', max_epochs=2, search_split='train')

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, deterministic=True)
log_level = 'INFO'
load_from = None
resume = False
'''
KEYS = ('adapter.fc.0.weight', 'adapter.fc.2.weight')


def _weights(path: Path) -> torch.Tensor:
    state = load_checkpoint_file(str(path))['state_dict']
    return torch.cat([state[k].flatten() for k in KEYS])


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
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
    a = _weights(tmp_path / 'one' / 'epoch_2.pth')
    b = _weights(tmp_path / 'two' / 'epoch_2.pth')
    start = _weights(tmp_path / 'one' / 'epoch_1.pth')
    # the same initialisation (the seed), trained, and equal at the end
    assert not torch.equal(a, start)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(a.abs().max()))
