# Copyright (c) mmprompt contributors. All rights reserved.
import pytest
import torch

from mmprompt.engine import FiniteLossHook


class _Runner:
    iter, epoch, work_dir = 6, 2, 'work_dirs/x'
    train_dataloader = [0, 1, 2]


def test_finite_loss_hook():
    hook = FiniteLossHook()
    hook.after_train_iter(_Runner, 0, outputs=dict(loss=torch.tensor(1.5)))
    hook.after_train_iter(_Runner, 0, outputs=None)
    for bad in (float('nan'), float('inf')):
        with pytest.raises(
                FloatingPointError,
                match=r'Loss is infinite or NaN! \(loss=(nan|inf)'
                r'\) at iteration 7 \(epoch 3, batch 1/3\)'):
            hook.after_train_iter(
                _Runner, 0, outputs=dict(loss=torch.tensor(bad)))
