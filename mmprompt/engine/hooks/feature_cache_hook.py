# Copyright (c) mmprompt contributors. All rights reserved.
"""The hook that gives cached-feature datasets their features."""
from typing import Optional

from mmengine.hooks import Hook

from mmprompt.registry import HOOKS
from ..feature_extraction import prepare_features

__all__ = ['FeatureCacheHook']


def _dataset_of(loop) -> Optional[object]:
    dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
    return dataset if hasattr(dataset, 'image_view') else None


@HOOKS.register_module()
class FeatureCacheHook(Hook):
    """Extract (or read from the cache) the features of every
    ``CachedFeatureDataset`` a loop reads, before it reads them.

    Before training: the training set (all its views) and the validation
    set (the adapter may choose its hyper-parameters on it after training);
    before a validation or test epoch: that set. Each view of each set is
    extracted once, by the model's frozen CLIP, and read from the cache
    folder afterwards (``mmprompt/engine/feature_extraction.py``).

    Args:
        cache_dir (str, optional): The cache folder, shareable between runs
            and sweeps: a file's name and content are its key (CLIP,
            weights, data, transform, view). Defaults to None:
            ``{work_dir}/feature_cache``.
        batch_size (int): Images per forward while extracting. Defaults to
            64.
        num_workers (int): Loader workers while extracting. Defaults to 0.

    Examples:
        >>> custom_hooks = [dict(type='ClassNamesHook'),
        ...                 dict(type='FeatureCacheHook',
        ...                      cache_dir='data/feature_cache')]
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 cache_dir: Optional[str] = None,
                 batch_size: int = 64,
                 num_workers: int = 0) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be an int >= 1, '
                             f'got {batch_size!r}')
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        #: Views extracted (not read from the cache) by this hook.
        self.extracted = 0

    def _prepare(self, runner, dataset) -> None:
        if dataset is not None:
            self.extracted += prepare_features(runner, dataset, self.cache_dir,
                                               self.batch_size,
                                               self.num_workers)

    def before_train(self, runner) -> None:
        self._prepare(runner, _dataset_of(runner.train_loop))
        if runner._val_loop is not None:
            self._prepare(runner, _dataset_of(runner.val_loop))

    def before_val_epoch(self, runner) -> None:
        self._prepare(runner, _dataset_of(runner.val_loop))

    def before_test_epoch(self, runner) -> None:
        self._prepare(runner, _dataset_of(runner.test_loop))
