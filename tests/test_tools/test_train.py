# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/train.py: run for real on the tiny config, and its argument
handling."""
import argparse
import errno
import io
import os
import re

import pytest
import torch
from mmengine.config import Config
from tools_testing import TOOLS, load_tool, run_tool

from mmprompt.utils import load_checkpoint_file

CTX = 'head.prompt_learner.ctx'


def _ctx(path):
    return load_checkpoint_file(str(path))['state_dict'][CTX]


def test_train_saves_only_the_prompt(trained):
    work_dir, log = trained['work_dir'], trained['log']
    for epoch in (1, 2):
        path = work_dir / f'epoch_{epoch}.pth'
        assert path.is_file(), log[-3000:]
        # The frozen CLIP is not saved: the file is tens of kilobytes.
        assert path.stat().st_size < 100_000
        checkpoint = load_checkpoint_file(str(path))
        assert checkpoint['meta']['epoch'] == epoch
        keys = list(checkpoint['state_dict'])
        assert CTX in keys
        assert all(k.startswith('head.prompt_learner.') for k in keys), keys
        assert checkpoint['state_dict'][CTX].shape == (4, 64)
    # The context learned something and the log shows progress with ETA.
    assert not torch.equal(
        _ctx(work_dir / 'epoch_1.pth'), _ctx(work_dir / 'epoch_2.pth'))
    assert re.search(r'Epoch\(train\) \[2\]\[3/3\].*eta: ', log), log[-3000:]
    assert re.search(r'Epoch\(val\) \[2\]\[\d+/\d+\]\s+accuracy/top1', log)


def test_resume_continues_from_the_last_checkpoint(trained, tiny_config,
                                                   tmp_path):
    work_dir = tmp_path / 'work'
    run_tool([
        'train.py',
        str(tiny_config), '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1'
    ],
             cwd=tmp_path)
    assert not (work_dir / 'epoch_2.pth').exists()

    log = run_tool([
        'train.py',
        str(tiny_config), '--work-dir',
        str(work_dir), '--resume'
    ],
                   cwd=tmp_path).stdout
    assert re.search(r'Auto resumed from the latest checkpoint \S*epoch_1',
                     log), log[-3000:]
    assert 'Epoch(train) [2]' in log
    assert 'Epoch(train) [1]' not in log
    # Weights, momentum and data order all carried over: the resumed run
    # ends where the uninterrupted one did.
    torch.testing.assert_close(
        _ctx(work_dir / 'epoch_2.pth'),
        _ctx(trained['work_dir'] / 'epoch_2.pth'),
        rtol=0,
        atol=1e-6)


@pytest.fixture(scope='module')
def train_tool():
    return load_tool('train.py')


def _merge(train_tool, config, *argv):
    args = train_tool.parse_args([str(config)] + list(argv))
    return train_tool.merge_args(Config.fromfile(str(config)), args)


def test_merge_args(train_tool, tiny_config, tmp_path):
    cfg = _merge(train_tool, tiny_config)
    assert cfg.work_dir == './work_dirs/coop_tiny'
    assert cfg.launcher == 'none'
    assert cfg.default_scope == 'mmprompt'
    assert not cfg.get('resume')

    cfg = _merge(train_tool, tiny_config, '--no-validate', '--auto-scale-lr',
                 '--work-dir', str(tmp_path), '--resume', '--cfg-options',
                 'optim_wrapper.optimizer.lr=0.1')
    assert cfg.work_dir == str(tmp_path)
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.val_evaluator is None
    assert cfg.auto_scale_lr == dict(base_batch_size=4, enable=True)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.optim_wrapper.optimizer.lr == 0.1

    checkpoint = tmp_path / 'epoch_3.pth'
    checkpoint.write_bytes(b'')
    cfg = _merge(train_tool, tiny_config, '--resume', str(checkpoint))
    assert cfg.resume is True and cfg.load_from == str(checkpoint)


def test_merge_args_refusals(train_tool, tiny_config, tmp_path):
    with pytest.raises(SystemExit, match='no such file'):
        _merge(train_tool, tiny_config, '--resume', str(tmp_path / 'no.pth'))
    with pytest.raises(SystemExit, match='not a local file'):
        _merge(train_tool, tiny_config, '--resume', 'https://x.org/e.pth')
    with pytest.raises(SystemExit, match='base_batch_size'):
        _merge(train_tool, tiny_config, '--auto-scale-lr', '--cfg-options',
               'auto_scale_lr=None')
    with pytest.raises(SystemExit):  # argparse: not a launcher
        train_tool.parse_args([str(tiny_config), '--launcher', 'ssh'])


def test_unreadable_checkpoints_are_named_before_building(
        train_tool, tiny_config, tmp_path, monkeypatch):
    """``--resume FILE`` and ``load_from`` with a text file (torch:
    ``IndexError: pop from empty list``) or a cut file (``OSError: [Errno
    22] Invalid argument``): one line naming the file, before any model or
    data is built."""
    import mmengine.runner
    monkeypatch.setattr(mmengine.runner.Runner, 'from_cfg',
                        lambda cfg: pytest.fail('built a Runner'))
    text = tmp_path / 'last_checkpoint'
    text.write_text('epoch_1.pth')
    buffer = io.BytesIO()
    torch.save({'state_dict': {'w': torch.zeros(64, 64)}}, buffer)
    cut = tmp_path / 'epoch_1.pth'
    cut.write_bytes(buffer.getvalue()[:9000])
    for extra, expected in [
        (['--resume', str(text)], 'is a text file, not a checkpoint'),
        (['--cfg-options', f'load_from={text}'], 'is a text file'),
        (['--resume', str(cut)], r'epoch_1.pth.*truncated'),
        (['--cfg-options', f'load_from={cut}'], r'epoch_1.pth.*truncated'),
    ]:
        with pytest.raises(SystemExit, match=expected) as err:
            train_tool.main(
                [str(tiny_config), '--work-dir',
                 str(tmp_path / 'work')] + extra)
        assert str(err.value).startswith('train.py: error: '), err.value
        assert 'IndexError' not in str(err.value)
    with pytest.raises(
            SystemExit, match=r"load_from '\S*nothing.pth': no "
            'such file'):
        train_tool.main([
            str(tiny_config), '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            f'load_from={tmp_path / "nothing.pth"}'
        ])


def test_amp(train_tool, tiny_config, monkeypatch):
    monkeypatch.setattr(train_tool, '_amp_device_available', lambda: False)
    with pytest.raises(SystemExit, match='--amp'):
        _merge(train_tool, tiny_config, '--amp')
    monkeypatch.setattr(train_tool, '_amp_device_available', lambda: True)
    cfg = _merge(train_tool, tiny_config, '--amp')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    # ProGrad keeps its gradient projection under mixed precision.
    cfg = _merge(train_tool, tiny_config, '--amp', '--cfg-options',
                 'optim_wrapper.type=ProGradOptimWrapper')
    assert cfg.optim_wrapper.type == 'ProGradAmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_local_rank_flags(train_tool, tiny_config, monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = train_tool.parse_args([str(tiny_config), '--local-rank', '3'])
    assert isinstance(args, argparse.Namespace) and args.local_rank == 3
    import os
    assert os.environ['LOCAL_RANK'] == '3'
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    assert train_tool.parse_args([str(tiny_config),
                                  '--local_rank=1']).local_rank == 1


def test_a_full_disk_names_the_checkpoint_and_what_is_intact(
        train_tool, tiny_config, tmp_path, monkeypatch):
    """The disk fills while epoch 2's checkpoint is written: mmengine's
    ``OSError: [Errno 28] No space left on device`` names no file."""
    from mmengine.fileio import LocalBackend
    put = LocalBackend.put

    def full_disk(backend, obj, filepath):
        if 'epoch_2' not in str(filepath):
            return put(backend, obj, filepath)
        with open(filepath, 'wb') as f:
            f.write(obj[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LocalBackend, 'put', full_disk)
    work_dir = tmp_path / 'work'
    with pytest.raises(SystemExit) as err:
        train_tool.main([
            str(tiny_config), '--work-dir',
            str(work_dir), '--cfg-options',
            'default_hooks.checkpoint.type=SafeCheckpointHook'
        ])
    message = str(err.value)
    assert message.startswith('train.py: error: cannot write '), message
    assert str(work_dir / 'epoch_2.pth') in message
    assert 'No space left on device' in message
    assert f"{work_dir / 'epoch_1.pth'}') is intact" in message
    assert '--resume' in message
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_1.pth']
    assert not list(work_dir.glob('.*tmp*'))


def test_a_top_level_variable_copied_by_the_config_is_named(
        train_tool, tiny_config, tiny_data, tmp_path, monkeypatch):
    """``--cfg-options data_root=...`` silently changed nothing: the
    config had copied it into the datasets when it was read."""
    config = tmp_path / 'with_root.py'
    config.write_text(f'_base_ = {str(tiny_config)!r}\n'
                      f'data_root = {str(tiny_data)!r}\n'
                      'train_dataloader = dict(dataset=dict('
                      'data_root=data_root))\n')
    logged = []
    monkeypatch.setattr(train_tool, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    cfg = _merge(train_tool, config, '--cfg-options', 'data_root=/mnt/x')
    assert cfg.train_dataloader.dataset.data_root == str(tiny_data)
    [warning] = [m for m in logged if 'data_root' in m]
    assert "--cfg-options data_root='/mnt/x' changes nothing" in warning
    assert 'train_dataloader.dataset.data_root=/mnt/x' in warning.split(
        'Set them instead: --cfg-options ')[1]


def test_a_copied_work_dir_resumes_from_its_own_checkpoint(
        trained, tiny_config, tmp_path):
    """``last_checkpoint`` holds an absolute path: a copy of a work dir
    resumed from the old folder's checkpoint while that still existed.
    (mmengine's CheckpointHook here; SafeCheckpointHook on its own in
    tests/test_engine/test_hooks/test_checkpoint_hook.py.)"""
    import shutil
    old, new = tmp_path / 'old', tmp_path / 'new'
    run_tool([
        'train.py',
        str(tiny_config), '--work-dir',
        str(old), '--cfg-options', 'train_cfg.max_epochs=1'
    ],
             cwd=tmp_path)
    shutil.copytree(old, new)
    # The old folder's checkpoint changes (e.g. that run goes on): the copy
    # must not see it.
    checkpoint = load_checkpoint_file(str(old / 'epoch_1.pth'))
    checkpoint['state_dict'][CTX].zero_()
    torch.save(checkpoint, str(old / 'epoch_1.pth'))

    log = run_tool(
        ['train.py',
         str(tiny_config), '--work-dir',
         str(new), '--resume'],
        cwd=tmp_path).stdout
    assert f'named {str(old / "epoch_1.pth")!r}, outside the work dir' in log
    assert f'resumed from the latest checkpoint {new / "epoch_1.pth"}' in log
    assert (new / 'last_checkpoint').read_text() == str(new / 'epoch_2.pth')
    assert not (old / 'epoch_2.pth').exists()
    torch.testing.assert_close(
        _ctx(new / 'epoch_2.pth'),
        _ctx(trained['work_dir'] / 'epoch_2.pth'),
        rtol=0,
        atol=1e-6)


def test_a_checkpoint_of_another_model_is_refused(train_tool, trained,
                                                  tiny_config, tmp_path):
    """load_from (and --resume, the same hook) of a checkpoint trained with
    the class name at the end into a learner that puts it in the middle:
    the shapes fit."""
    checkpoint = trained['work_dir'] / 'epoch_2.pth'
    saved = load_checkpoint_file(str(checkpoint))['meta']['trained_on']
    assert saved['class_names'] == ['cat', 'dog', 'sea_lion']
    assert saved['prompt_learner']['class_token_position'] == 'end'
    options = [
        '--cfg-options', f'load_from={checkpoint}',
        'model.head.prompt_learner.class_token_position=middle',
        'train_cfg.max_epochs=1'
    ]
    with pytest.raises(
            SystemExit,
            match=r"train.py: error: checkpoint '\S*epoch_2.pth' was trained "
            r'with another model than the config builds: '
            r"prompt_learner.class_token_position: 'end' in the checkpoint, "
            r"'middle' in the config.*--ignore-checkpoint-meta"):
        train_tool.main(
            [str(tiny_config), '--work-dir',
             str(tmp_path / 'refused')] + options)
    assert not list((tmp_path / 'refused').glob('*.pth'))
    train_tool.main([
        str(tiny_config), '--work-dir',
        str(tmp_path / 'asked'), '--ignore-checkpoint-meta'
    ] + options)
    saved = load_checkpoint_file(str(tmp_path / 'asked' /
                                     'epoch_1.pth'))['meta']['trained_on']
    assert saved['prompt_learner']['class_token_position'] == 'middle'


def test_max_keep_ckpts_of_the_shipped_runtime_is_honoured(
        tiny_config, tmp_path):
    """configs/_base_/default_runtime.py's checkpoint hook (keep 2), run by
    tools/train.py: every epoch's checkpoint used to stay."""
    runtime = Config.fromfile(
        str(TOOLS.parent / 'configs' / '_base_' / 'default_runtime.py'))
    hook = runtime.default_hooks.checkpoint
    assert hook.type == 'SafeCheckpointHook' and hook.max_keep_ckpts == 2
    work_dir = tmp_path / 'work'
    run_tool(
        [
            'train.py',
            str(tiny_config), '--work-dir',
            str(work_dir), '--cfg-options', 'train_cfg.max_epochs=3'
        ] + [f'default_hooks.checkpoint.{k}={v}' for k, v in hook.items()],
        cwd=tmp_path)
    assert sorted(p.name for p in work_dir.glob('*.pth')) == [
        'epoch_2.pth', 'epoch_3.pth'
    ]
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir /
                                                             'epoch_3.pth')
