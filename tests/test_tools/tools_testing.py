# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers of the tools' tests: a tiny image set, a tiny config, running
and importing the scripts.

Everything is generated: 3 classes of 32x32 PNG images in a folder per
class, a split file in the original CoOp format and a config training a
CoOp prompt on the random-weight ``mmprompt-tiny-vit`` CLIP. The fixtures
are in ``conftest.py``.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
from golden_testing import golden_path, golden_root

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools'
GOLDEN = golden_root()

CLASSES = ['cat', 'dog', 'sea_lion']
# Images per class in each split.
SPLIT_SIZES = dict(train=4, val=2, test=2)

CONFIG_TEMPLATE = '''\
default_scope = 'mmprompt'
custom_imports = dict(imports=['mmprompt'], allow_failed_imports=False)

model = dict(
    type='PromptClassifier',
    clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
    head=dict(
        type='CoOpHead',
        prompt_learner=dict(type='CoOpPromptLearner', n_ctx=4)))

pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=32),
    dict(type='PackInputs'),
]


def _loader(split, shuffle):
    return dict(
        batch_size=4,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        dataset=dict(
            type='SplitJsonDataset',
            data_root={data_root!r},
            split_file='split.json',
            image_dir='images',
            split=split,
            pipeline=pipeline))


train_dataloader = _loader('train', True)
val_dataloader = _loader('val', False)
test_dataloader = _loader('test', False)
del _loader

val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.002, momentum=0.9, weight_decay=5e-4))
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=4)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='ClassNamesHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
log_level = 'INFO'
load_from = None
resume = False
'''


def make_image_tree(root: Path) -> Path:
    """Write the tiny image set and its CoOp split file under ``root``.

    Images of a class share a colour (plus noise), so that even a prompt on
    a random CLIP has something to learn.

    Returns:
        Path: ``root`` (``images/<class>/<n>.png`` and ``split.json``).
    """
    import mmengine
    from PIL import Image
    rng = np.random.default_rng(0)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    split = {name: [] for name in SPLIT_SIZES}
    for label, (name, colour) in enumerate(zip(CLASSES, colours)):
        folder = root / 'images' / name
        folder.mkdir(parents=True, exist_ok=True)
        index = 0
        for split_name, size in SPLIT_SIZES.items():
            for _ in range(size):
                noise = rng.integers(-40, 40, size=(32, 32, 3))
                pixels = np.clip(np.array(colour) + noise, 0, 255)
                rel = f'{name}/{index:02d}.png'
                Image.fromarray(pixels.astype(np.uint8)).save(root / 'images' /
                                                              rel)
                split[split_name].append([rel, label, name])
                index += 1
    mmengine.dump(split, str(root / 'split.json'))
    return root


def write_config(path: Path, data_root: Path) -> Path:
    """Write the tiny CoOp config reading the image set at ``data_root``."""
    path.write_text(CONFIG_TEMPLATE.format(data_root=str(data_root)))
    return path


def load_tool(relpath: str):
    """Import a script of ``tools/`` as a module (it has no package).

    Args:
        relpath (str): e.g. ``'model_converters/coop_to_mmprompt.py'``.
    """
    name = 'tools_' + relpath.replace('/', '_').replace('.py', '')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOLS / relpath)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def run_tool(args: List[str],
             cwd: Path,
             check: bool = True,
             timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python tools/<args...>`` as a user would, output captured.

    Args:
        args (list[str]): The script relative to ``tools/`` and its
            arguments.
        cwd (Path): The working directory.
        check (bool): Fail the test, showing the output, on a non-zero
            exit status. Defaults to True.
        timeout (float): Seconds. Defaults to 300.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED='1')
    # One thread per process: the tests start several and the host is small.
    env.setdefault('OMP_NUM_THREADS', '1')
    proc = subprocess.run(
        [sys.executable, str(TOOLS / args[0])] + args[1:],
        cwd=str(cwd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f'{args[0]} exited with {proc.returncode}:\n'
                    f'{proc.stdout[-6000:]}')
    return proc


def golden_dir(*parts: str) -> Path:
    """A folder of the original code's outputs; skip or fail where missing
    (``golden_testing.golden_path``)."""
    return golden_path(*parts)
