# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers for running mmpretrain's own tools and APIs on mmprompt configs.

mmpretrain installs its ``tools/`` beside the package
(``mmpretrain/.mim/tools``); the tests run those scripts unchanged, in a
fresh process as a user would, on configs that inherit a shipped config
and only point it at tiny generated data and a tiny CLIP.
``spy_tool.py`` (this folder) runs a tool and records the class names it
draws or plots, which its images do not show in a checkable form.
"""
import json
import os.path as osp
import subprocess
import sys
from pathlib import Path

import mmpretrain
import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MIM_TOOLS = Path(osp.dirname(mmpretrain.__file__)) / '.mim' / 'tools'
DEMO_CONFIG = (
    REPO / 'configs' / 'demo' /
    'cocoop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py')
#: A shipped model-zoo config whose dataset name is also one of mmpretrain's.
SHIPPED_CONFIG = (
    REPO / 'configs' / 'coop' /
    'coop_resnet50_clip-openai_1xb32-ep200_16shot-caltech101.py')
CALTECH_CLASSES = ['accordion', 'airplane', 'anchor', 'ant']

# The tiny CLIP takes 32x32 images.
TINY_PIPELINE = """[
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]"""


def mim_tool(relpath: str) -> Path:
    """mmpretrain's tool ``relpath``, or skip when mmpretrain has none."""
    path = MIM_TOOLS / relpath
    if not path.is_file():
        pytest.skip(f"mmpretrain's {relpath} is not installed with the "
                    'package (mmpretrain/.mim/tools)')
    return path


def run_tool(relpath: str, *args, cwd: Path, record: Path = None):
    """Run mmpretrain's tool in a fresh process; with ``record``, through
    ``spy_tool.py``, which writes what the tool drew there."""
    tool = str(mim_tool(relpath))
    command = [sys.executable]
    if record is not None:
        command += [str(HERE / 'spy_tool.py'), str(record)]
    command += [tool, *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=600)


def read_record(record: Path) -> dict:
    return json.loads(record.read_text())
