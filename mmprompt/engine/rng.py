# Copyright (c) mmprompt contributors. All rights reserved.
"""The states of the random number generators, for bit-identical resume."""
import random
from typing import Any, Dict

import numpy as np
import torch

__all__ = ['get_rng_state', 'set_rng_state']


def get_rng_state() -> Dict[str, Any]:
    """The states of Python's, numpy's, torch's (and CUDA's) generators.

    Returns:
        dict: ``python``, ``numpy``, ``torch`` and, with a GPU, ``cuda``:
        tensors, numpy arrays and plain data, so that a checkpoint holding
        them loads with ``weights_only=True``.

    Examples:
        >>> import random
        >>> state = get_rng_state()
        >>> first = random.random()
        >>> set_rng_state(state)
        >>> random.random() == first
        True
    """
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned.

    The CUDA states are restored only on a machine with as many GPUs as the
    one that saved them.

    Args:
        state (dict): As returned by :func:`get_rng_state`, possibly after
            a round trip through ``torch.save`` and ``torch.load`` (which
            turns Python's tuple into a list).
    """
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state['numpy']))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available() \
            and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
