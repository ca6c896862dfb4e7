# Copyright (c) mmprompt contributors. All rights reserved.
"""Fixtures shared by the whole suite."""
from pathlib import Path

import pytest
from golden_testing import golden_path


@pytest.fixture(scope='session')
def golden_dir() -> Path:
    """The golden folder; skips, or fails under MMPROMPT_REQUIRE_GOLDEN=1,
    where it is missing (see ``golden_testing.py``)."""
    return golden_path()


@pytest.fixture(autouse=True, scope='session')
def _mmprompt_scope():
    from mmengine.registry import init_default_scope

    import mmprompt  # noqa: F401
    init_default_scope('mmprompt')
