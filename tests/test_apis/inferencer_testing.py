# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers of the inference tests: a tiny config and generated images.

The model is a CoOp prompt on the random-weight ``mmprompt-tiny-vit`` CLIP
(32x32 inputs); nothing is downloaded.
"""
import os.path as osp
from pathlib import Path
from typing import List

import numpy as np

CLASSES = ['cat', 'dog', 'sea_lion', 'red car']

CONFIG_TEXT = '''\
default_scope = 'mmprompt'
custom_imports = dict(imports=['mmprompt'], allow_failed_imports=False)

model = dict(
    type='PromptClassifier',
    clip=dict(
        type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained={pretrained!r}),
    head=dict(
        type='CoOpHead',
        prompt_learner=dict(type='CoOpPromptLearner', n_ctx={n_ctx},
                            csc={csc}, num_classes={num_classes})))

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow',
         color_type='color_ignore_orientation'),
    dict(type='ResizeEdge', scale=32, edge='short', interpolation='bicubic',
         backend='pillow'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='SplitJsonDataset',
        data_root={data_root!r},
        split_file='split.json',
        split='test',
        pipeline=test_pipeline))
'''


def make_clip(folder: Path) -> str:
    """A random tiny CLIP saved in open_clip's format, so that every model
    built from the config has the same CLIP."""
    from mmprompt.testing import random_tiny_clip, save_open_clip_weights
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / 'tiny-clip.pt')
    if not osp.isfile(path):
        save_open_clip_weights(random_tiny_clip('mmprompt-tiny-vit'), path)
    return path


def write_config(path: Path,
                 pretrained: str = None,
                 n_ctx: int = 4,
                 csc: bool = False,
                 num_classes=None,
                 data_root: str = '/nonexistent/mmprompt-data') -> str:
    """Write the tiny config; its test set does not exist by default.

    ``pretrained=None`` gives a new random CLIP for every model built.
    """
    path.write_text(
        CONFIG_TEXT.format(
            pretrained=pretrained,
            n_ctx=n_ctx,
            csc=csc,
            num_classes=num_classes,
            data_root=data_root))
    return str(path)


def make_images(folder: Path, count: int = 5, seed: int = 0) -> List[str]:
    """``count`` random RGB PNG files of different sizes."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        h, w = 28 + 4 * i, 40 - 2 * i
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = osp.join(folder, f'img_{i}.png')
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths
