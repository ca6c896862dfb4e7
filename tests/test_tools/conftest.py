# Copyright (c) mmprompt contributors. All rights reserved.
"""Fixtures of the tools' tests; the helpers are in ``tools_testing.py``."""
from pathlib import Path

import pytest
from tools_testing import make_image_tree, run_tool, write_config


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> Path:
    """The tiny image set with its split file."""
    return make_image_tree(tmp_path_factory.mktemp('tiny_data'))


@pytest.fixture(scope='session')
def tiny_config(tmp_path_factory, tiny_data) -> Path:
    """The tiny CoOp config, 2 epochs, a checkpoint per epoch."""
    return write_config(
        tmp_path_factory.mktemp('config') / 'coop_tiny.py', tiny_data)


@pytest.fixture(scope='session')
def trained(tmp_path_factory, tiny_config) -> dict:
    """One uninterrupted 2-epoch training run of the tiny config.

    Returns:
        dict: ``work_dir`` (Path) and ``log`` (the output of train.py).
    """
    work_dir = tmp_path_factory.mktemp('train') / 'work'
    proc = run_tool(
        ['train.py', str(tiny_config), '--work-dir',
         str(work_dir)],
        cwd=work_dir.parent)
    return dict(work_dir=work_dir, log=proc.stdout)
