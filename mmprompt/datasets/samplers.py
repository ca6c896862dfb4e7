# Copyright (c) mmprompt contributors. All rights reserved.
"""Random augmentation that does not depend on the number of processes.

mmcv's and mmpretrain's random transforms draw from the process's global
generators (numpy's, Python's), seeded per rank and per dataloader worker.
The same sample then gets another crop and flip on 2 processes than on 1,
and DDP at the same global batch ends elsewhere than one process.

Here each sample's transforms draw from generators seeded by
``(seed, epoch, sample index)`` alone:

* :class:`DefaultSampler`, registered in mmprompt's ``DATA_SAMPLERS`` under
  mmengine's name (so every config's ``sampler=dict(type='DefaultSampler')``
  in the ``'mmprompt'`` scope is this one), yields the indices of mmengine's
  sampler, each a :class:`SampleIndex` carrying the seed of its sample,
  :func:`sample_seed` of the sampler's seed (the same on every rank), the
  epoch (``set_epoch``, called by ``DistSamplerSeedHook`` before every
  epoch) and the index. The seed travels with the index to whichever
  process or worker loads the sample, persistent workers included.
* The datasets of mmprompt (:class:`~mmprompt.datasets.CoOpDataset`) run the
  pipeline of a :class:`SampleIndex` inside :func:`seeded_generators`, which
  seeds Python's, numpy's and torch's CPU generators with it and restores
  their states afterwards, so that loading also leaves the process's own
  random stream (and a resumed run's restored generators) untouched.

1 process with batch 4 and 2 processes with batch 2 see the same crops and
flips, and the same shuffling (mmengine's sampler gives rank ``r`` the
indices ``r, r + 2, ...`` of the same permutation).
"""
import contextlib
import logging
import random
from typing import Iterator

import numpy as np
import torch
from mmengine.dataset import DefaultSampler as _MMEngineDefaultSampler
from mmengine.logging import print_log

from mmprompt.registry import DATA_SAMPLERS

__all__ = ['DefaultSampler', 'SampleIndex', 'sample_seed', 'seeded_generators']

_MASK64 = (1 << 64) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's random transforms.

    A function of ``(seed, epoch, index)`` only, mixed with numpy's
    ``SeedSequence`` so that neighbouring indices and epochs get unrelated
    streams.

    Args:
        seed (int): The sampler's seed (the run's, or the config's
            ``sampler.seed``).
        epoch (int): The epoch.
        index (int): The sample's index in the dataset.

    Returns:
        int: A 64-bit seed.

    Examples:
        >>> sample_seed(1, 0, 5) == sample_seed(1, 0, 5)
        True
        >>> len({sample_seed(1, 0, 5), sample_seed(1, 1, 5),
        ...      sample_seed(1, 0, 6), sample_seed(2, 0, 5)})
        4
    """
    words = np.random.SeedSequence(
        [int(seed) & _MASK64,
         int(epoch) & _MASK64,
         int(index) & _MASK64]).generate_state(2, np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


class SampleIndex(int):
    """A dataset index that carries the seed of its sample's transforms.

    It is the index everywhere an ``int`` is expected; datasets that know
    it (mmprompt's) run the pipeline with :func:`seeded_generators`.

    Args:
        index (int): The index.
        seed (int): The sample's seed (:func:`sample_seed`).

    Examples:
        >>> import pickle
        >>> idx = SampleIndex(3, seed=7)
        >>> idx + 1, [10, 11, 12, 13][idx], idx.seed
        (4, 13, 7)
        >>> pickle.loads(pickle.dumps(idx)).seed
        7
    """

    seed: int

    def __new__(cls, index: int, seed: int) -> 'SampleIndex':
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        return obj

    def __reduce__(self):
        return SampleIndex, (int(self), self.seed)

    def __repr__(self) -> str:
        return f'SampleIndex({int(self)}, seed={self.seed})'


@contextlib.contextmanager
def seeded_generators(seed: int) -> Iterator[None]:
    """Seed Python's, numpy's and torch's CPU generators; restore them after.

    Args:
        seed (int): A 64-bit seed (numpy gets its low 32 bits).

    Examples:
        >>> import numpy as np
        >>> before = np.random.get_state()[1].copy()
        >>> with seeded_generators(3):
        ...     a = np.random.rand()
        >>> with seeded_generators(3):
        ...     b = np.random.rand()
        >>> a == b, bool((np.random.get_state()[1] == before).all())
        (True, True)
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.default_generator.manual_seed(seed)  # the CPU generator only
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


@DATA_SAMPLERS.register_module()
class DefaultSampler(_MMEngineDefaultSampler):
    """mmengine's ``DefaultSampler`` whose indices carry per-sample seeds.

    The same indices, in the same order, on every rank as mmengine's
    (arguments unchanged); each is a :class:`SampleIndex` whose seed is
    :func:`sample_seed` of ``(self.seed, self.epoch, index)``. A dataset
    that does not use the seeds (anything but mmprompt's datasets, e.g. one
    wrapped in ``RepeatDataset``) gets plain ``int`` behaviour; for a
    training set, a warning says that its augmentation then depends on the
    number of processes and workers.

    Args:
        dataset (Sized): The dataset.
        shuffle (bool): Whether to shuffle. Defaults to True.
        seed (int, optional): Seed of the shuffling and of the samples'
            transforms, the same on every rank; None takes one from rank 0.
            The Runner passes ``randomness.seed``. Defaults to None.
        round_up (bool): Pad to a multiple of the world size. Defaults to
            True.

    Examples:
        >>> sampler = DefaultSampler(list(range(4)), shuffle=False, seed=0)
        >>> [int(i) for i in sampler]
        [0, 1, 2, 3]
        >>> first = next(iter(sampler)).seed
        >>> sampler.set_epoch(1)
        >>> next(iter(sampler)).seed != first
        True
    """

    def __init__(self, dataset, *args, **kwargs) -> None:
        super().__init__(dataset, *args, **kwargs)
        inner = dataset  # a wrapper's (RepeatDataset, ...) innermost set
        while not hasattr(inner, 'test_mode') and hasattr(inner, 'dataset'):
            inner = inner.dataset
        if not getattr(dataset, 'SEEDS_SAMPLES', False) and \
                not getattr(inner, 'test_mode', True):
            print_log(
                f'{type(dataset).__name__} does not seed its samples\' '
                'transforms from the sampler: its random augmentation '
                'depends on the number of processes and dataloader '
                "workers (mmprompt's datasets, unwrapped, do not)",
                logger='current',
                level=logging.WARNING)

    def __iter__(self) -> Iterator[SampleIndex]:
        """Iterate the indices, each with its sample's seed."""
        for index in super().__iter__():
            yield SampleIndex(index, sample_seed(self.seed, self.epoch, index))
