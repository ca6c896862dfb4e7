# Copyright (c) mmprompt contributors. All rights reserved.
"""Fixtures shared by the whole suite."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def golden_root() -> Path:
    """``../shared/golden`` beside the checkout, or ``$MMPROMPT_GOLDEN``."""
    env = os.environ.get('MMPROMPT_GOLDEN')
    return Path(env) if env else REPO_ROOT.parent / 'shared' / 'golden'


@pytest.fixture(scope='session')
def golden_dir() -> Path:
    root = golden_root()
    if not root.is_dir():
        pytest.skip(f'golden outputs of the original CoOp not found at '
                    f'{root} (set MMPROMPT_GOLDEN to their folder)')
    return root


@pytest.fixture(autouse=True, scope='session')
def _mmprompt_scope():
    from mmengine.registry import init_default_scope

    import mmprompt  # noqa: F401
    init_default_scope('mmprompt')
