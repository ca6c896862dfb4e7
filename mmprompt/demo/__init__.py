# Copyright (c) mmprompt contributors. All rights reserved.
"""The embedded demo's data: coloured shapes and a tiny CLIP, generated on
first use by ``demo/base2new_demo.py`` (and by tests that need real files).

It sits above ``mmprompt.datasets`` and ``mmprompt.models``, beside
``mmprompt.apis``: it writes a dataset and trains a CLIP, so it needs both,
and neither of them may import it.
"""
from .console import LogTee, ProgressHook, quiet_console
from .prepare import CLIP_FILE, SPLIT_FILE, prepare_demo_data
from .shapes import DEMO_CLASSES, draw_shape, write_shapes_dataset
from .tiny_clip import PRETRAINING_CAPTIONS, pretrain_demo_clip

__all__ = [
    'CLIP_FILE', 'DEMO_CLASSES', 'PRETRAINING_CAPTIONS', 'SPLIT_FILE',
    'LogTee', 'ProgressHook', 'draw_shape', 'prepare_demo_data',
    'pretrain_demo_clip', 'quiet_console', 'write_shapes_dataset'
]
