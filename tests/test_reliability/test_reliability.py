# Copyright (c) mmprompt contributors. All rights reserved.
"""A crash never costs the run, distributed training on CPUs, a stop at the
first non-finite loss and a clear error for every bad input.

``docs/reliability.md`` maps each promise to the test here that proves it.
The subprocess tests start real ``tools/train.py`` runs (and torchrun) and
kill them with SIGKILL.
"""
import importlib.util
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from reliability_testing import (REPO_ROOT, finish, kill_after_line, learned,
                                 make_image_tree, start_torchrun, start_train,
                                 write_config)

from mmprompt.registry import DATASETS, MODELS, registry_hint
from mmprompt.testing import tiny_prompt_classifier
from mmprompt.utils import (CheckpointMismatchError, check_checkpoint_fits,
                            existing_checkpoints)

KILLED = -signal.SIGKILL


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> dict:
    """The tiny images and the 4-epoch CoCoOp config with augmentation."""
    root = tmp_path_factory.mktemp('reliability')
    data = make_image_tree(root / 'data')
    return dict(
        root=root, data=data, config=write_config(root / 'cocoop.py', data))


def _train_tool():
    name = 'reliability_tools_train'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, REPO_ROOT / 'tools' / 'train.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _assert_same_learned(a: Path, b: Path) -> None:
    left, right = learned(a), learned(b)
    assert sorted(left) == sorted(right)
    for key in left:
        assert torch.equal(left[key], right[key]), key


# ---------------------------------------------------------------------------
# 1. Crash and resume
# ---------------------------------------------------------------------------
def test_killed_anywhere_resumes_bit_identical(tiny):
    """Killed mid-epoch, killed halfway through writing a checkpoint, and
    the last checkpoint corrupted: ``--resume`` still ends with the context
    and Meta-Net of a run never interrupted (4 epochs, random crops and
    flips, validation every epoch)."""
    root, config = tiny['root'], str(tiny['config'])
    ref, run = root / 'uninterrupted', root / 'interrupted'
    reference = start_train([config, '--work-dir', str(ref)], root)
    # 1. SIGKILL in the middle of epoch 2.
    first = start_train([config, '--work-dir', str(run)], root)
    log = kill_after_line(first, 'Epoch(train) [2][2/3]')
    assert first.returncode == KILLED, log[-3000:]
    saved = existing_checkpoints(str(run))
    assert 'last_checkpoint' in saved and 'epoch_1.pth' in saved, saved
    assert 'epoch_3.pth' not in saved

    # 2. Resume; SIGKILL halfway through writing epoch 3's checkpoint.
    second = start_train([config, '--work-dir',
                          str(run), '--resume'],
                         root,
                         env={'MMPROMPT_TEST_KILL_SAVING_EPOCH': '3'})
    log = finish(second)
    assert second.returncode == KILLED, log[-3000:]
    assert re.search(r'Auto resumed from the latest checkpoint \S*epoch_',
                     log), log[-3000:]
    # The half-written bytes went to a hidden temporary file; the pointer
    # still names the complete epoch 2.
    assert not (run / 'epoch_3.pth').exists()
    partial = list(run.glob('.epoch_3.pth.tmp-*'))
    assert len(partial) == 1 and partial[0].stat().st_size > 0
    pointer = (run / 'last_checkpoint').read_text()
    assert pointer.endswith('epoch_2.pth'), pointer

    # 3. The last checkpoint is corrupted (a disk error, or one written by
    # a plain CheckpointHook when killed): resume skips it.
    data = (run / 'epoch_2.pth').read_bytes()
    (run / 'epoch_2.pth').write_bytes(data[:len(data) // 3])
    third = start_train([config, '--work-dir', str(run), '--resume'], root)
    log = finish(third)
    assert third.returncode == 0, log[-4000:]
    assert re.search(
        r'names \S*epoch_2.pth\S*, which is missing or not a '
        r'readable checkpoint; resuming from \S*epoch_1.pth', log), log[-4000:]
    assert 'Epoch(train) [2][1/3]' in log and 'Epoch(train) [1]' not in log
    assert not list(run.glob('.*.tmp-*'))

    log = finish(reference)
    assert reference.returncode == 0, log[-4000:]
    _assert_same_learned(run / 'epoch_4.pth', ref / 'epoch_4.pth')
    # The comparison can fail: training moved the weights.
    assert not torch.equal(
        learned(ref / 'epoch_1.pth')['head.prompt_learner.ctx'],
        learned(ref / 'epoch_4.pth')['head.prompt_learner.ctx'])


def test_new_run_never_overwrites_checkpoints(tiny, tmp_path):
    """A run without --resume refuses a work dir holding checkpoints and
    leaves every file as it was; --resume or an empty folder is accepted.
    """
    train = _train_tool()
    work_dir = tmp_path / 'old_run'
    work_dir.mkdir()
    (work_dir / 'epoch_3.pth').write_bytes(b'weights of the older run')
    (work_dir / 'notes.txt').write_text('mine')
    before = {p.name: p.read_bytes() for p in work_dir.iterdir()}
    with pytest.raises(
            SystemExit,
            match=r"already holds the checkpoints of "
            r"a run \(epoch_3.pth\).*--resume"):
        train.main([str(tiny['config']), '--work-dir', str(work_dir)])
    with pytest.raises(SystemExit, match='already holds'):
        train.main([
            str(tiny['config']), '--work-dir',
            str(work_dir), '--cfg-options', 'load_from=x.pth'
        ])
    assert {p.name: p.read_bytes() for p in work_dir.iterdir()} == before

    args = train.parse_args(
        [str(tiny['config']), '--work-dir',
         str(work_dir), '--resume'])
    train.check_work_dir(
        train.merge_args(Config.fromfile(str(tiny['config'])), args))
    args = train.parse_args(
        [str(tiny['config']), '--work-dir',
         str(tmp_path / 'new')])
    train.check_work_dir(
        train.merge_args(Config.fromfile(str(tiny['config'])), args))


# ---------------------------------------------------------------------------
# 2. Distributed
# ---------------------------------------------------------------------------
def test_learned_state_is_all_tensors():
    """mmengine broadcasts every ``state_dict()`` value before distributed
    training; its ``broadcast`` takes tensors only."""
    model = tiny_prompt_classifier('CoCoOpHead', n_ctx=4)
    wrong = {
        k: type(v).__name__
        for k, v in model.state_dict().items()
        if not isinstance(v, torch.Tensor)
    }
    # mmengine broadcasts every state_dict() value before distributed
    # training (Runner._init_model_weights), and broadcasts tensors only.
    assert not wrong, f'{wrong} are not tensors: --launcher pytorch fails'


def test_two_processes_equal_one_with_the_same_global_batch(tiny):
    """torchrun, 2 CPU processes with gloo, batch 2 each == 1 process with
    batch 4, after 6 steps, with random crops and flips: each sample's
    augmentation is seeded by (seed, epoch, index), not by the rank
    (mmprompt.datasets.samplers). DDP wraps the prompt learner (the frozen
    CLIP is not a parameter) without unused-parameter errors, and both
    processes exit 0 (the process group is torn down)."""
    root = tiny['root']
    one = write_config(
        root / 'one.py', tiny['data'], augment=True, batch_size=4, epochs=2)
    two = write_config(
        root / 'two.py', tiny['data'], augment=True, batch_size=2, epochs=2)
    single = start_train([str(one), '--work-dir', str(root / 'one')], root)
    dist = start_torchrun(2, [str(two), '--work-dir', str(root / 'two')], root)
    log = finish(dist)
    assert dist.returncode == 0, log[-5000:]
    assert 'terminate called' not in log, log[-5000:]
    assert 'Distributed training: True' in log
    assert "with the 'gloo' backend instead of 'nccl'" in log
    assert 'Epoch(train) [2][3/3]' in log  # 12 images / (2 x 2) per step
    log = finish(single)
    assert single.returncode == 0, log[-5000:]
    a = learned(root / 'one' / 'epoch_2.pth')
    b = learned(root / 'two' / 'epoch_2.pth')
    start = learned(root / 'one' / 'epoch_1.pth')
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
        assert not torch.equal(a[key], start[key]), key


# ---------------------------------------------------------------------------
# 3. Numerical safety
# ---------------------------------------------------------------------------
def test_fp16_logits_are_finite_and_a_nan_stops_training(tiny, tmp_path):
    """fp16 CLIP (the original's default precision): finite logits on the
    tiny CLIP; a NaN injected in the context stops training at once, naming
    the iteration."""
    cfg = Config.fromfile(str(tiny['config']))
    cfg.model.clip.precision = 'fp16'
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_epochs = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.custom_hooks = [dict(type='ClassNamesHook')]
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.set_class_names(['cat', 'dog', 'sea lion'])
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()

    runner.register_hook(_PoisonHook(model.head.prompt_learner, 1))
    with pytest.raises(
            FloatingPointError,
            match=r'at iteration 2 \(epoch 1, batch 2/3\)'):
        runner.train()
    assert not list(tmp_path.glob('epoch_*.pth'))


class _PoisonHook(Hook):
    """Fill the context with NaN before iteration ``at`` (0-based)."""

    def __init__(self, learner, at):
        self.learner, self.at = learner, at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == self.at:
            with torch.no_grad():
                self.learner.ctx.fill_(float('nan'))


# ---------------------------------------------------------------------------
# 4. Bad input
# ---------------------------------------------------------------------------
def _coop(n_ctx):
    return tiny_prompt_classifier(n_ctx=n_ctx)


def test_checkpoint_of_another_n_ctx_or_method_is_refused(tiny, tmp_path):
    four, eight = _coop(4), _coop(8)
    check_checkpoint_fits(four, four.state_dict(), 'four.pth')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'head.prompt_learner.ctx: \(8, 64\) in the checkpoint, '
            r'\(4, 64\) in the model'):
        check_checkpoint_fits(four, eight.state_dict(), 'eight.pth')
    with pytest.raises(CheckpointMismatchError, match='meta_net'):
        check_checkpoint_fits(
            MODELS.build(Config.fromfile(str(tiny['config'])).model),
            four.state_dict(), 'coop.pth')
    # Through tools/train.py: load_from and --resume.
    cocoop = Config.fromfile(str(tiny['config'])).model
    cocoop.head.prompt_learner.n_ctx = 8
    path = tmp_path / 'cocoop_n8.pth'
    torch.save(
        dict(
            meta=dict(epoch=1, iter=3),
            state_dict=MODELS.build(cocoop).state_dict()), path)
    train = _train_tool()
    for extra in (['--cfg-options',
                   f'load_from={path}'], ['--resume', str(path)]):
        with pytest.raises(SystemExit, match=r'\(8, 64\) in the checkpoint'):
            train.main([
                str(tiny['config']), '--work-dir',
                str(tmp_path / extra[0][2:])
            ] + extra)


def test_checkpoint_that_runs_code_is_refused_by_train(tiny, tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _Evil(str(marker))}, path)
    with pytest.raises(SystemExit, match='refusing to load'):
        _train_tool().main([
            str(tiny['config']), '--work-dir',
            str(tmp_path / 'w'), '--resume',
            str(path)
        ])
    assert not marker.exists()


class _Evil:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def test_unknown_type_lists_close_registered_names(tiny, tmp_path):
    with pytest.raises(KeyError) as err:
        MODELS.build(dict(type='CoOpHeed'))
    hint = registry_hint(err.value)
    assert "'CoOpHeed' is not a registered model type" in hint
    assert "Did you mean 'CoOpHead'" in hint
    # Nested (the head inside the classifier), through tools/train.py.
    with pytest.raises(
            SystemExit,
            match=r"'CoCoOpHaed' is not a registered "
            r"model type.*Did you mean 'CoCoOpHead'"):
        _train_tool().main([
            str(tiny['config']), '--work-dir',
            str(tmp_path), '--cfg-options', 'model.head.type=CoCoOpHaed'
        ])
    # A dataset; a parent's name (mmpretrain's transforms).
    with pytest.raises(KeyError) as err:
        DATASETS.build(dict(type='OxfordPet'))
    assert "'OxfordPets'" in registry_hint(err.value)
    from mmprompt.registry import TRANSFORMS
    with pytest.raises(KeyError) as err:
        TRANSFORMS.build(dict(type='RandomResizeCrop'))
    assert "'RandomResizedCrop'" in registry_hint(err.value)
    assert registry_hint(KeyError('head')) is None


def test_corrupt_image_names_the_file(tiny, tmp_path):
    import shutil
    data = tmp_path / 'data'
    shutil.copytree(tiny['data'], data)
    bad = data / 'images' / 'dog' / '01.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 20)
    dataset = DATASETS.build(
        dict(
            type='SplitJsonDataset',
            data_root=str(data),
            split_file='split.json',
            image_dir='images',
            split='train',
            # As every shipped config (mmprompt.datasets.pipelines): mmcv's
            # cv2 decoder names the file, the pillow one does not.
            pipeline=[
                dict(
                    type='LoadImageFromFile',
                    imdecode_backend='pillow',
                    color_type='color_ignore_orientation')
            ]))
    index = [
        i for i in range(len(dataset))
        if dataset.get_data_info(i)['img_path'] == str(bad)
    ]
    with pytest.raises(Exception) as err:
        dataset[index[0]]
    assert str(bad) in str(err.value)
