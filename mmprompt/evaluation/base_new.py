# Copyright (c) mmprompt contributors. All rights reserved.
"""The harmonic mean of base and new accuracy (CoCoOp's H)."""
from typing import Dict, Sequence, Union

import numpy as np


def harmonic_mean(base: float, new: float) -> float:
    """``H = 2 B N / (B + N)``, 0 when both are 0.

    Args:
        base (float): Accuracy on the base classes.
        new (float): Accuracy on the new classes.

    Returns:
        float: The harmonic mean, in the unit of the inputs.

    Examples:
        >>> round(harmonic_mean(80.47, 71.69), 2)
        75.83
    """
    if base < 0 or new < 0:
        raise ValueError(f'accuracies must be >= 0, got base={base}, '
                         f'new={new}')
    if base + new == 0:
        return 0.
    return 2 * base * new / (base + new)


def base_new_summary(base: Union[float, Sequence[float]],
                     new: Union[float, Sequence[float]],
                     decimals: int = 1) -> Dict[str, float]:
    """Average seeds and compute H as the original's ``parse_test_res.py``.

    Each seed's accuracy is first rounded to ``decimals`` (the original
    prints ``{acc:.1f}%`` and parses that), then base and new are averaged
    over seeds and H is taken of the averages.

    Args:
        base (float | Sequence[float]): Base accuracy of each seed.
        new (float | Sequence[float]): New accuracy of each seed.
        decimals (int): Rounding of each seed's accuracy; a negative value
            keeps them unrounded. Defaults to 1.

    Returns:
        dict[str, float]: ``base``, ``new`` and ``H``.
    """
    b = np.atleast_1d(np.asarray(base, dtype=np.float64))
    n = np.atleast_1d(np.asarray(new, dtype=np.float64))
    if decimals >= 0:
        # The seeds' numbers are what the original printed with '%.1f'.
        b = np.array([float(f'{v:.{decimals}f}') for v in b])
        n = np.array([float(f'{v:.{decimals}f}') for v in n])
    b_mean, n_mean = float(b.mean()), float(n.mean())
    return dict(base=b_mean, new=n_mean, H=harmonic_mean(b_mean, n_mean))
