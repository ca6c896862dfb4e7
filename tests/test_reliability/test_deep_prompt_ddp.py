# Copyright (c) mmprompt contributors. All rights reserved.
"""MaPLe and PromptSRC under DDP: 2 processes equal 1 at the same global
batch.

The originals run ``nn.DataParallel`` in one process (MaPLe's
``ParameterList`` even breaks there, its issues #4, #15, #36, #68).
``tools/train.py`` under torchrun with 2 CPU processes (gloo) at batch 2
each ends where 1 process at batch 4 ends after 2 epochs, with random crops
and flips: for MaPLe (its coupling layers and compound prompts), and for
PromptSRC with its regularisers (each a mean over the local batch, so their
average over the processes is the global batch's) and the Gaussian prompt
aggregation (every process sums the same parameters; the last checkpoint
holds the aggregate).

Without the originals' fp16 rounding of the injected prompts
(``fp16_rounding=False``) the runs end equal up to the order of fp32 sums
(4e-6 of the largest value measured). With it (the default), each class's
copy of a deep text prompt has its gradient rounded to fp16 after the sum
over the images the process holds, so 2 processes round 2 partial sums
where 1 process rounds the whole: the runs then agree to the fp16 rounding
(3.3e-4 of the largest value after 6 steps, where the second epoch moves
them by 0.08 to 0.47), as the original's own single-GPU and DataParallel
runs would differ.
"""
from pathlib import Path

import pytest
import torch
from reliability_testing import (finish, make_image_tree, start_torchrun,
                                 start_train)

from mmprompt.utils import load_checkpoint_file

MAPLE = '''dict(
        type='DeepPromptHead',
        prompt_learner=dict(
            type='MaPLePromptLearner', n_ctx=2, ctx_init='a photo of a',
            depth=2, fp16_rounding={rounding}))'''
PROMPTSRC = '''dict(
        type='PromptSRCHead',
        prompt_learner=dict(
            type='IVLPPromptLearner', n_ctx=4, ctx_init='a photo of a',
            text_depth=2, n_vision_ctx=4, vision_depth=2,
            fp16_rounding={rounding}))'''
GPA = "dict(type='GaussianPromptAggregationHook', mean=2, std=1)"

CONFIG = '''\
default_scope = 'mmprompt'
custom_imports = dict(imports=['mmprompt'], allow_failed_imports=False)

model = dict(
    type='PromptClassifier',
    clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
    head={head})

pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='RandomResizedCrop', scale=32, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size={batch_size},
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
    dataset=dict(
        type='SplitJsonDataset',
        data_root={data_root!r},
        split_file='split.json',
        image_dir='images',
        split='train',
        pipeline=pipeline))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='CosineAnnealingLR', T_max=2, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=2)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='ClassNamesHook'), {hooks}]
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, deterministic=True)
log_level = 'INFO'
load_from = None
resume = False
'''


def _learned(path: Path) -> dict:
    state = load_checkpoint_file(str(path))['state_dict']
    return {
        k: v
        for k, v in state.items()
        if k.startswith('head.prompt_learner.') and v.is_floating_point()
    }


@pytest.mark.parametrize('rounding', [False, True])
@pytest.mark.parametrize('method', ['maple', 'promptsrc'])
def test_two_processes_equal_one_with_the_same_global_batch(
        tmp_path, method, rounding):
    data = make_image_tree(tmp_path / 'data')
    head = (MAPLE if method == 'maple' else PROMPTSRC).format(
        rounding=rounding)
    hooks = GPA if method == 'promptsrc' else "dict(type='FiniteLossHook')"
    one, two = tmp_path / 'one.py', tmp_path / 'two.py'
    for path, batch in ((one, 4), (two, 2)):
        path.write_text(
            CONFIG.format(
                head=head, hooks=hooks, batch_size=batch, data_root=str(data)))
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
    if method == 'promptsrc':
        for log_text in (log, single_log):
            assert 'loss_scl_logits' in log_text
            assert 'Gaussian prompt aggregation' in log_text
    a = _learned(tmp_path / 'one' / 'epoch_2.pth')
    b = _learned(tmp_path / 'two' / 'epoch_2.pth')
    start = _learned(tmp_path / 'one' / 'epoch_1.pth')
    assert sorted(a) == sorted(b) and len(a) >= 4
    # Equal up to the order of fp32 sums over the batch, or up to the fp16
    # rounding of each process's partial gradient sums.
    tol = 2**-10 if rounding else 1e-5
    for key in a:
        torch.testing.assert_close(
            a[key], b[key], rtol=0, atol=tol * float(a[key].abs().max()))
    assert any(not torch.equal(a[k], start[k]) for k in a)
    if method == 'promptsrc':
        final = load_checkpoint_file(str(tmp_path / 'two' / 'epoch_2.pth'))
        state = final['gaussian_prompt_aggregation']
        assert state['epochs'] == [1, 2]
        for key in a:
            assert torch.equal(state['sum'][key], b[key]), key
