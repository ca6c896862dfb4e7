# Copyright (c) mmprompt contributors. All rights reserved.
"""Where the original code's outputs are, and what a test does without them.

The one place that decides both. The golden folder is ``$MMPROMPT_GOLDEN``
or ``../shared/golden`` beside the checkout. Where it (or a file in it) is
missing, a test that needs it is skipped with the path in the reason, as in
a user's clone; with ``MMPROMPT_REQUIRE_GOLDEN=1`` (set by ``.ci/run``) it
fails instead, so CI cannot pass by skipping the faithfulness tests.
"""
import os
from pathlib import Path

import pytest

GOLDEN_ENV = 'MMPROMPT_GOLDEN'
REQUIRE_ENV = 'MMPROMPT_REQUIRE_GOLDEN'
REPO_ROOT = Path(__file__).resolve().parents[1]


def golden_root() -> Path:
    """``$MMPROMPT_GOLDEN``, else ``../shared/golden`` beside the checkout.
    """
    env = os.environ.get(GOLDEN_ENV)
    return Path(env) if env else REPO_ROOT.parent / 'shared' / 'golden'


def golden_required() -> bool:
    """Whether a missing golden file fails the test (CI) or skips it."""
    return os.environ.get(REQUIRE_ENV,
                          '').strip().lower() not in ('', '0', 'false', 'no')


def golden_path(*parts: str) -> Path:
    """A file or folder of the golden outputs; skip or fail where missing.

    Args:
        *parts (str): Its path under the golden folder; none for the
            folder itself.

    Returns:
        Path: The existing path.
    """
    root = golden_root()
    path = root.joinpath(*parts)
    if path.exists():
        return path
    if root.is_dir():
        missing = f'{path} not found in the golden folder {root}'
    else:
        missing = f'golden folder {root} not found'
    how = (f'set {GOLDEN_ENV} to the folder of the original code\'s '
           f'outputs; ../shared/golden beside the checkout by default')
    if golden_required():
        pytest.fail(
            f'{missing} ({how}; {REQUIRE_ENV} is set, so this is a failure, '
            'not a skip)',
            pytrace=False)
    pytest.skip(f'{missing} ({how})')
