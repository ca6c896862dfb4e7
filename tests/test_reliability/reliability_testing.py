# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers of the reliability tests: a tiny data set, tiny configs, running
``tools/train.py`` (also under torchrun) and killing it.

Imported by the tests and, through ``custom_imports``, by the training
processes they start (for :class:`KillDuringSaveHook`), so it lives beside
the tests under a name no other test module uses.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.hooks import Hook

from mmprompt.registry import HOOKS

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
TRAIN = REPO_ROOT / 'tools' / 'train.py'
CLASSES = ['cat', 'dog', 'sea_lion']
SPLIT_SIZES = dict(train=4, val=2, test=2)
LEARNED = ('head.prompt_learner.ctx', 'head.prompt_learner.meta_net.')

# CoCoOp (context and Meta-Net) on a random tiny CLIP with random crops and
# flips, so that resuming must restore the generators to end bit-identical.
CONFIG_TEMPLATE = '''\
default_scope = 'mmprompt'
custom_imports = dict(
    imports=['mmprompt', 'reliability_testing'], allow_failed_imports=False)

model = dict(
    type='PromptClassifier',
    clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
    head=dict(
        type='CoCoOpHead',
        prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=4)))

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=32, backend='pillow'),
    dict(type='PackInputs'),
]
train_pipeline = {train_pipeline}


def _loader(split, pipeline, batch_size):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=split == 'train', seed=0),
        dataset=dict(
            type='SplitJsonDataset',
            data_root={data_root!r},
            split_file='split.json',
            image_dir='images',
            split=split,
            pipeline=pipeline))


train_dataloader = _loader('train', train_pipeline, {batch_size})
val_dataloader = _loader('val', test_pipeline, 6)
del _loader
val_evaluator = dict(type='Accuracy', topk=(1, ))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr={lr}, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='CosineAnnealingLR', T_max={epochs}, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs={epochs}, val_interval=1)
val_cfg = dict()

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='SafeCheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    finite_loss=dict(type='FiniteLossHook'))
custom_hooks = [dict(type='ClassNamesHook'), dict(type='KillDuringSaveHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0, deterministic=True)
log_level = 'INFO'
load_from = None
resume = False
'''

AUGMENTING = '''[
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='RandomResizedCrop', scale=32, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]'''
# The deterministic pipeline, for runs without augmentation.
PLAIN = 'test_pipeline'


def make_image_tree(root: Path) -> Path:
    """Three classes of 32x32 PNGs and a CoOp split file under ``root``."""
    import mmengine
    from PIL import Image
    rng = np.random.default_rng(0)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    split = {name: [] for name in SPLIT_SIZES}
    for label, (name, colour) in enumerate(zip(CLASSES, colours)):
        (root / 'images' / name).mkdir(parents=True, exist_ok=True)
        index = 0
        for split_name, size in SPLIT_SIZES.items():
            for _ in range(size):
                noise = rng.integers(-60, 60, size=(32, 32, 3))
                pixels = np.clip(np.array(colour) + noise, 0, 255)
                rel = f'{name}/{index:02d}.png'
                Image.fromarray(pixels.astype(np.uint8)).save(root / 'images' /
                                                              rel)
                split[split_name].append([rel, label, name])
                index += 1
    mmengine.dump(split, str(root / 'split.json'))
    return root


def write_config(path: Path,
                 data_root: Path,
                 augment: bool = True,
                 batch_size: int = 4,
                 epochs: int = 4,
                 lr: float = 0.02) -> Path:
    """Write the tiny CoCoOp config reading the images at ``data_root``."""
    path.write_text(
        CONFIG_TEMPLATE.format(
            data_root=str(data_root),
            train_pipeline=AUGMENTING if augment else PLAIN,
            batch_size=batch_size,
            epochs=epochs,
            lr=lr))
    return path


def _env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    # PYTHONFAULTHANDLER: a process that aborts (SIGABRT, SIGSEGV) prints
    # the Python stack of every thread, e.g. whether it was in the process
    # group's teardown or in the interpreter's exit.
    env = dict(
        os.environ,
        PYTHONUNBUFFERED='1',
        OMP_NUM_THREADS='1',
        PYTHONFAULTHANDLER='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), str(HERE)] +
        ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env.update(extra or {})
    return env


def start_train(args: List[str],
                cwd: Path,
                env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """Start ``python tools/train.py ARGS``, output in one pipe."""
    return subprocess.Popen(
        [sys.executable, str(TRAIN)] + args,
        cwd=str(cwd),
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)


def start_torchrun(nproc: int,
                   args: List[str],
                   cwd: Path,
                   env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """``torchrun --nproc_per_node NPROC tools/train.py ARGS --launcher
    pytorch`` on a free loopback port."""
    torchrun = [
        sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1',
        '--nproc_per_node',
        str(nproc), '--master_addr', '127.0.0.1', '--master_port',
        str(free_port())
    ]
    return subprocess.Popen(
        torchrun + [str(TRAIN)] + args + ['--launcher', 'pytorch'],
        cwd=str(cwd),
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    """Wait for ``proc``; its whole output."""
    out, _ = proc.communicate(timeout=timeout)
    return out


def kill_after_line(proc: subprocess.Popen,
                    marker: str,
                    timeout: float = 240) -> str:
    """SIGKILL ``proc`` as soon as a line containing ``marker`` appears.

    Returns:
        str: The output up to the kill.
    """
    lines = []
    deadline = time.time() + timeout
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            break
        if time.time() > deadline:
            break
    proc.kill()
    rest, _ = proc.communicate(timeout=60)
    return ''.join(lines) + rest


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def learned(path: Path) -> Dict[str, torch.Tensor]:
    """The context and Meta-Net tensors of a checkpoint."""
    from mmprompt.utils import load_checkpoint_file
    state = load_checkpoint_file(str(path))['state_dict']
    found = {k: v for k, v in state.items() if k.startswith(LEARNED)}
    assert 'head.prompt_learner.ctx' in found, list(state)
    assert any('meta_net' in k for k in found), list(state)
    return found


@HOOKS.register_module(force=True)
class KillDuringSaveHook(Hook):
    """SIGKILL this process halfway through writing a checkpoint.

    Set ``MMPROMPT_TEST_KILL_SAVING_EPOCH=N``: when the checkpoint of epoch
    N is written, half of its bytes reach the file being written (for
    ``SafeCheckpointHook``, the temporary file that
    ``AtomicLocalBackend.put`` writes with ``LocalBackend.put``), then the
    process is killed, as by the OOM killer or a pre-empted node. Does
    nothing without the variable.
    """

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        epoch = os.environ.get('MMPROMPT_TEST_KILL_SAVING_EPOCH')
        if epoch is None or checkpoint['meta']['epoch'] != int(epoch):
            return
        from mmengine.fileio.backends import LocalBackend

        def put(backend, obj: bytes, filepath) -> None:
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

        LocalBackend.put = put
