# Copyright (c) mmprompt contributors. All rights reserved.
"""SafeCheckpointHook on a tiny real Runner: atomic writes through the
registered file backend, pruning after the new checkpoint is in place,
verified auto-resume and the generators' states.

The kills (SIGKILL mid-epoch and mid-write, bit-identical resume) are in
``tests/test_reliability``.
"""
import itertools
import os

import pytest
import torch
import torch.nn as nn
from mmengine.fileio import LocalBackend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmprompt.engine import SafeCheckpointHook, get_rng_state, set_rng_state
from mmprompt.utils import AtomicLocalBackend, load_checkpoint_file


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        # Draws from torch's global generator, as augmentations do.
        self.dropout = nn.Dropout(0.5)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(self.dropout(torch.stack(inputs)))
        return {'loss': out.square().mean()} if mode == 'loss' else out


class _Data(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index)))


_RUNS = itertools.count()


def _runner(work_dir, epochs, resume=False, **hook):
    return Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(type='SafeCheckpointHook', interval=1, **hook),
            logger=dict(type='LoggerHook', interval=100)),
        default_scope='mmprompt',
        resume=resume,
        randomness=dict(seed=0),
        log_level='WARNING',
        experiment_name=f'safe_checkpoint_{next(_RUNS)}')


def _checkpoints(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix == '.pth')


def test_atomic_writes_and_pruning_after_the_new_checkpoint(
        tmp_path, monkeypatch):
    on_disk_at_write = {}
    put = AtomicLocalBackend.put

    def recording_put(backend, obj, filepath):
        on_disk_at_write[os.path.basename(filepath)] = _checkpoints(tmp_path)
        put(backend, obj, filepath)

    monkeypatch.setattr(AtomicLocalBackend, 'put', recording_put)
    runner = _runner(tmp_path, 4, max_keep_ckpts=2)
    hook = next(h for h in runner.hooks if isinstance(h, SafeCheckpointHook))
    # mmengine's own pruning (before writing) is off; ours keeps 2.
    assert hook.max_keep_ckpts == -1 and hook.keep_ckpts == 2
    runner.train()

    assert isinstance(hook.file_backend, AtomicLocalBackend)
    # Every checkpoint went through the atomic backend, and the oldest one
    # was still there when the next was written.
    assert sorted(on_disk_at_write) == [f'epoch_{i}.pth' for i in range(1, 5)]
    assert on_disk_at_write['epoch_3.pth'] == ['epoch_1.pth', 'epoch_2.pth']
    assert on_disk_at_write['epoch_4.pth'] == ['epoch_2.pth', 'epoch_3.pth']
    assert _checkpoints(tmp_path) == ['epoch_3.pth', 'epoch_4.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path /
                                                             'epoch_4.pth')
    assert not list(tmp_path.glob('.*.tmp-*'))
    checkpoint = load_checkpoint_file(str(tmp_path / 'epoch_4.pth'))
    assert set(checkpoint['rng_state']) >= {'python', 'numpy', 'torch'}


def test_pruning_keeps_checkpoints_newer_than_the_one_written(tmp_path):
    """Resumed from an older checkpoint: the newer files of the abandoned
    branch are not counted (they will be overwritten)."""
    _runner(tmp_path, 3).train()
    (tmp_path / 'epoch_9.pth').write_bytes(b'abandoned')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    _runner(tmp_path, 4, resume=True, max_keep_ckpts=1).train()
    assert _checkpoints(tmp_path) == ['epoch_4.pth', 'epoch_9.pth']


def test_auto_resume_skips_a_torn_pointer_and_partial_writes(tmp_path):
    _runner(tmp_path, 2).train()
    # Killed while mmengine wrote the pointer, and during a later write.
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path)[:5])
    partial = tmp_path / '.epoch_3.pth.tmp-12345'
    partial.write_bytes(b'half a checkpoint')
    runner = _runner(tmp_path, 3, resume=True)
    runner.train()
    assert runner.iter == 6  # resumed at epoch 2, one more epoch
    assert not partial.exists()
    assert _checkpoints(tmp_path) == [f'epoch_{i}.pth' for i in (1, 2, 3)]


def test_a_copied_work_dir_resumes_from_its_own_checkpoint(tmp_path):
    """The pointer's absolute path names the old folder, whose checkpoint
    still exists (and differs): the copy resumes from its own."""
    import shutil
    old, new = tmp_path / 'old', tmp_path / 'new'
    _runner(old, 2).train()
    shutil.copytree(old, new)
    checkpoint = load_checkpoint_file(str(old / 'epoch_2.pth'))
    checkpoint['meta']['epoch'] = 1
    torch.save(checkpoint, str(old / 'epoch_2.pth'))
    runner = _runner(new, 3, resume=True)
    runner.train()
    assert runner.iter == 6  # from epoch 2, not the old folder's 'epoch 1'
    assert (new / 'last_checkpoint').read_text() == str(new / 'epoch_3.pth')
    assert not (old / 'epoch_3.pth').exists()


def test_resumed_run_ends_bit_identical(tmp_path):
    """The generators' states travel with the checkpoint: the dropout masks
    drawn after resuming are those of the uninterrupted run."""
    (tmp_path / 'once').mkdir()
    (tmp_path / 'twice').mkdir()
    once = _runner(tmp_path / 'once', 3)
    once.train()
    _runner(tmp_path / 'twice', 2).train()
    twice = _runner(tmp_path / 'twice', 3, resume=True)
    twice.train()
    for key, value in once.model.state_dict().items():
        assert torch.equal(value, twice.model.state_dict()[key]), key


class _Described(_Toy):

    def checkpoint_meta(self):
        return dict(head='ToyHead')


def test_checkpoints_record_what_they_were_trained_with(tmp_path):
    """Also under a Runner built without tools/train.py (whose
    CheckpointFitHook records it as well)."""
    runner = _runner(tmp_path, 1)
    runner.model = _Described()
    runner.train()
    checkpoint = load_checkpoint_file(str(tmp_path / 'epoch_1.pth'))
    assert checkpoint['meta']['trained_on'] == dict(head='ToyHead')


def test_validation_leaves_the_generators_as_it_found_them():
    hook = SafeCheckpointHook(interval=1)
    state = get_rng_state()
    expected = torch.rand(3)
    set_rng_state(state)
    hook.before_val(None)
    torch.rand(7)  # what validation draws
    hook.after_val(None)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize('kwargs, expected', [
    (dict(), dict(backend='atomic_local')),
    (dict(backend_args=dict(backend='local')), dict(backend='local')),
    (dict(out_dir='s3://bucket/run'), None),
])
def test_backend_args(kwargs, expected):
    assert SafeCheckpointHook(interval=1, **kwargs).backend_args == expected


def test_the_backend_is_a_local_backend():
    assert issubclass(AtomicLocalBackend, LocalBackend)
