# Copyright (c) mmprompt contributors. All rights reserved.
"""The lr schedule against the original's per-epoch learning rates."""
import copy
import json
import math
import os

import pytest
import torch
from golden_testing import golden_path
from torch import nn

import mmprompt  # noqa: F401
from mmprompt.engine import ConstantWarmupCosineLR
from mmprompt.registry import PARAM_SCHEDULERS

BASE_LR = 0.002


def golden_lrs():
    path = golden_path('protocol', 'lr_per_epoch.json')
    return {int(k): v for k, v in json.loads(path.read_text()).items()}


def assert_close(got, expected):
    assert len(got) == len(expected)
    for epoch, (g, e) in enumerate(zip(got, expected)):
        assert abs(g - e) <= 1e-12 * abs(e), (epoch, g, e)


def make_optimizer():
    return torch.optim.SGD([nn.Parameter(torch.zeros(2))],
                           lr=BASE_LR,
                           momentum=0.9,
                           weight_decay=5e-4)


def run_epochs(optimizer, scheduler, epochs):
    """Step as mmengine's ParamSchedulerHook: once after each epoch."""
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize('max_epochs', [10, 50, 200])
def test_matches_original(max_epochs):
    expected = golden_lrs()[max_epochs]
    opt = make_optimizer()
    sched = PARAM_SCHEDULERS.build(
        dict(type='ConstantWarmupCosineLR', T_max=max_epochs),
        default_args=dict(optimizer=opt))
    got = run_epochs(opt, sched, max_epochs)
    assert_close(got, expected)
    # The last epoch's lr is that of cosine step T_max - 2, not zero.
    assert got[-1] == pytest.approx(
        BASE_LR * 0.5 * (1 + math.cos(math.pi *
                                      (max_epochs - 2) / max_epochs)))


@pytest.mark.parametrize('max_epochs,stop', [(50, 17), (200, 1), (10, 9)])
def test_resume_from_state_dict(max_epochs, stop):
    expected = golden_lrs()[max_epochs]
    opt = make_optimizer()
    sched = ConstantWarmupCosineLR(opt, T_max=max_epochs)
    first = run_epochs(opt, sched, stop)
    opt_state = copy.deepcopy(opt.state_dict())
    sched_state = copy.deepcopy(sched.state_dict())

    # a fresh process: new optimizer and scheduler, then the states
    opt2 = make_optimizer()
    sched2 = ConstantWarmupCosineLR(opt2, T_max=max_epochs)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    rest = run_epochs(opt2, sched2, max_epochs - stop)
    assert_close(first + rest, expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match='T_max must be an int >= 1'):
        ConstantWarmupCosineLR(make_optimizer(), T_max=0)
    with pytest.raises(ValueError, match='warmup_epochs'):
        ConstantWarmupCosineLR(make_optimizer(), T_max=5, warmup_epochs=-1)


def test_general_warmup_and_eta_min():
    opt = make_optimizer()
    sched = ConstantWarmupCosineLR(
        opt, T_max=4, warmup_lr=1e-4, warmup_epochs=2, eta_min=1e-3)
    lrs = run_epochs(opt, sched, 6)
    assert lrs[:2] == [1e-4, 1e-4]
    assert lrs[2] == pytest.approx(BASE_LR)
    assert lrs[4] == pytest.approx(1e-3 + (BASE_LR - 1e-3) * 0.5)
    assert lrs[5] == pytest.approx(1e-3 + (BASE_LR - 1e-3) * 0.5 *
                                   (1 + math.cos(math.pi * 3 / 4)))


def _toy_model():
    """Smallest mmengine model: one linear layer, loss of its output."""
    from mmengine.model import BaseModel

    class ToyModel(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.linear(inputs)
            if mode == 'loss':
                return dict(loss=out.pow(2).mean())
            return out

    return ToyModel()


class _ToyData(torch.utils.data.Dataset):

    def __len__(self):
        return 2

    def __getitem__(self, idx):
        return dict(inputs=torch.ones(2) * idx)


def _runner(work_dir, max_epochs, record, resume=False, load_from=None):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    class RecordLR(Hook):

        def before_train_epoch(self, runner):
            record.append(
                (runner.epoch,
                 runner.optim_wrapper.optimizer.param_groups[0]['lr']))

    return Runner(
        model=_toy_model(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=1,
            num_workers=0),
        optim_wrapper=dict(
            optimizer=dict(
                type='SGD', lr=BASE_LR, momentum=0.9, weight_decay=5e-4)),
        param_scheduler=dict(type='ConstantWarmupCosineLR', T_max=max_epochs),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=4),
            logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=[RecordLR()],
        default_scope='mmprompt',
        resume=resume,
        load_from=load_from,
        log_level='WARNING',
        experiment_name=f'lr_{len(os.listdir(work_dir))}')


def test_runner_applies_original_lrs_and_resumes(tmp_path):
    expected = golden_lrs()[10]
    record = []
    _runner(tmp_path, 10, record).train()
    assert [e for e, _ in record] == list(range(10))
    assert_close([lr for _, lr in record], expected)

    # --resume from the epoch-4 checkpoint continues the same trajectory
    resumed = []
    _runner(
        tmp_path,
        10,
        resumed,
        resume=True,
        load_from=str(tmp_path / 'epoch_4.pth')).train()
    assert [e for e, _ in resumed] == list(range(4, 10))
    assert_close([lr for _, lr in resumed], expected[4:])


# ---------------------------------------------------------------------------
# KgCoOp's schedules (golden/kgcoop/lr_per_epoch.json, 100 epochs)
# ---------------------------------------------------------------------------
def kgcoop_lrs():
    path = golden_path('kgcoop', 'lr_per_epoch.json')
    return json.loads(path.read_text())


@pytest.mark.parametrize('name,bug', [
    ('c43ccc3', None),
    ('before_98d11b8', 'kgcoop_before_98d11b8'),
    ('before_98d11b8_torch1x_emulated', 'kgcoop_before_98d11b8_torch1x'),
])
def test_kgcoop_schedules(name, bug):
    """The fixed code is the default schedule; the double step of KgCoOp
    before 98d11b8 (issue #2) is the named option, under current torch
    (lr <= 1e-5, 9.7e-12 in the last epoch) and torch 1.x."""
    expected = kgcoop_lrs()[name]
    opt = make_optimizer()
    sched = PARAM_SCHEDULERS.build(
        dict(type='ConstantWarmupCosineLR', T_max=100, original_bug=bug),
        default_args=dict(optimizer=opt))
    got = run_epochs(opt, sched, 100)
    for epoch, (g, e) in enumerate(zip(got, expected)):
        assert abs(g - e) <= 1e-12 * abs(e), (name, epoch, g, e)
    if bug == 'kgcoop_before_98d11b8':
        assert max(got) == 1e-5 and got[-1] == pytest.approx(9.73e-12, 1e-3)


def test_kgcoop_bug_resumes_and_checks_its_arguments():
    expected = kgcoop_lrs()['before_98d11b8_torch1x_emulated']
    bug = 'kgcoop_before_98d11b8_torch1x'
    opt = make_optimizer()
    sched = ConstantWarmupCosineLR(opt, T_max=100, original_bug=bug)
    first = run_epochs(opt, sched, 46)
    state = copy.deepcopy(sched.state_dict())
    opt2 = make_optimizer()
    sched2 = ConstantWarmupCosineLR(opt2, T_max=100, original_bug=bug)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    sched2.load_state_dict(state)
    # issue #2's log: 'epoch [46/100] ... lr 6.686703e-04'
    assert f'{opt2.param_groups[0]["lr"]:.6e}' == '6.686703e-04'
    assert_close(first + run_epochs(opt2, sched2, 54), expected)
    with pytest.raises(
            ValueError, match="original_bug must be None or one "
            ".*got 'kgcoop'"):
        ConstantWarmupCosineLR(
            make_optimizer(), T_max=5, original_bug='kgcoop')
    with pytest.raises(ValueError, match='eta_min=0, got eta_min=0.001'):
        ConstantWarmupCosineLR(
            make_optimizer(),
            T_max=5,
            eta_min=1e-3,
            original_bug='kgcoop_before_98d11b8')
