# Copyright (c) mmprompt contributors. All rights reserved.
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import Dataset

from mmprompt.utils import (CorruptCheckpointError, UnsafeCheckpointError,
                            load_checkpoint_file)


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        return {'loss': out.square().mean()} if mode == 'loss' else out


class _Data(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index)))


@pytest.fixture(scope='module')
def mmengine_checkpoint(tmp_path_factory):
    """A checkpoint written by a real mmengine Runner (message hub with
    HistoryBuffers and numpy values, optimizer and scheduler states)."""
    work_dir = tmp_path_factory.mktemp('runner')
    runner = Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        default_scope='mmprompt')
    runner.train()
    return work_dir / 'epoch_1.pth'


def test_mmengine_checkpoint_loads_with_weights_only(mmengine_checkpoint):
    raw_error = None
    try:
        torch.load(mmengine_checkpoint, weights_only=True)
    except Exception as err:  # noqa: BLE001
        raw_error = err
    checkpoint = load_checkpoint_file(str(mmengine_checkpoint))
    assert set(checkpoint) >= {'meta', 'state_dict', 'message_hub'}
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert np.isfinite(buffer.mean())
    # mmprompt's allowlist is registered globally, so plain torch.load (as
    # mmengine's resume calls it) works as well.
    assert raw_error is None


def test_mmengine_load_checkpoint_goes_through_the_safe_loader(
        mmengine_checkpoint):
    model = _Toy()
    load_checkpoint(model, str(mmengine_checkpoint))
    saved = load_checkpoint_file(str(mmengine_checkpoint))['state_dict']
    torch.testing.assert_close(model.linear.weight, saved['linear.weight'])


class _RunsCode:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _RunsCode(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_file(str(path))
    assert 'evil.pth' in str(err.value) and 'system' in str(err.value)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(_Toy(), str(path))
    assert not marker.exists()


def test_getattr_beyond_history_buffer_statistics_is_refused(tmp_path):

    class _Sneaky:

        def __reduce__(self):
            # getattr(HistoryBuffer, '__init__') is not a statistics method.
            return (getattr, (HistoryBuffer, '__init__'))

    path = tmp_path / 'sneaky.pth'
    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        load_checkpoint_file(str(path))


def test_truncated_checkpoint_is_reported_as_corrupt(mmengine_checkpoint,
                                                     tmp_path):
    data = mmengine_checkpoint.read_bytes()
    path = tmp_path / 'half.pth'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match='half.pth'):
        load_checkpoint_file(str(path))


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint(_Toy(), str(tmp_path / 'missing.pth'))
