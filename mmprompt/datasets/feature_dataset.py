# Copyright (c) mmprompt contributors. All rights reserved.
"""A dataset of the frozen CLIP features of another dataset's images."""
import hashlib
import json
import os.path as osp
from typing import Any, Dict, Optional, Union

import torch
from mmengine.dataset import Compose
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

from mmprompt.registry import DATASETS
from .samplers import SampleIndex, sample_seed

__all__ = ['CachedFeatureDataset']


@DATASETS.register_module()
class CachedFeatureDataset(Dataset):
    """The frozen CLIP image features of a dataset, ``V`` views of it.

    Wraps an image dataset (``dataset``): the same items, labels and
    ``metainfo``, but each item is a feature ``(D, )`` read from memory
    (``dict(inputs=feature, data_samples=DataSample(gt_label=...))``).
    The features are extracted once by ``FeatureCacheHook``
    (``mmprompt/engine/hooks/feature_cache_hook.py``) with the model's
    frozen CLIP and kept on disk, keyed on everything that changes them
    (:meth:`cache_key`). View ``v`` of item ``i`` is the image dataset's
    pipeline run with the seed ``sample_seed(seed, v, i)``: the ``V``
    augmented passes of a training split that the originals draw
    (Tip-Adapter: 10), the same whatever the number of processes. A split
    under the test transform has one view.

    While training, ``AdapterTrainLoop`` reads view ``epoch % V``
    (:meth:`set_view`); items are then tiny tensors, so the loaders need no
    worker processes (``num_workers=0``).

    Args:
        dataset (dict | Dataset): The image dataset (mmprompt's, e.g.
            ``dict(type='OxfordPets', split='train', num_shots=16, ...)``),
            with its pipeline.
        views (int): The number of views. Defaults to 1.
        seed (int): The seed of the views' augmentation. Defaults to 1.
    """

    def __init__(self,
                 dataset: Union[dict, Dataset],
                 views: int = 1,
                 seed: int = 1) -> None:
        if not isinstance(views, int) or isinstance(views, bool) or views < 1:
            raise ValueError(f'views must be an int >= 1, got {views!r}')
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f'seed must be an int, got {seed!r}')
        self._dataset_cfg = dict(dataset) if isinstance(dataset,
                                                        dict) else None
        self.dataset = DATASETS.build(dataset) if isinstance(dataset,
                                                             dict) else dataset
        self.views = views
        self.seed = seed
        self.view = 0
        self.features: Optional[torch.Tensor] = None  # (V, N, D)
        self.labels = torch.tensor([
            int(self.dataset.get_data_info(i)['gt_label'])
            for i in range(len(self.dataset))
        ],
                                   dtype=torch.long)

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    @property
    def split(self) -> Optional[str]:
        """The image dataset's split (``'train'``, ``'val'``, ``'test'``)."""
        return getattr(self.dataset, 'split', None)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_features(self, features: torch.Tensor) -> None:
        """Hold ``features`` ``(V, N, D)`` (from the cache)."""
        if features.dim() != 3 or features.shape[:2] != (self.views,
                                                         len(self)):
            raise ValueError(
                f'features must be (views={self.views}, N={len(self)}, D), '
                f'got {tuple(features.shape)}')
        self.features = features

    def set_view(self, view: int) -> None:
        """Read view ``view % V`` from now on."""
        self.view = int(view) % self.views

    def __getitem__(self, idx: int) -> dict:
        if self.features is None:
            raise RuntimeError(
                'CachedFeatureDataset: the features are not extracted yet. '
                "Add dict(type='FeatureCacheHook') to custom_hooks (the "
                "adapter configs' default_runtime does) so that the runner "
                'extracts or loads them before the loop starts')
        idx = int(idx)
        sample = DataSample().set_gt_label(int(self.labels[idx]))
        return dict(inputs=self.features[self.view, idx], data_samples=sample)

    # ------------------------------------------------------------------
    # What the feature cache needs
    def image_view(self, view: int) -> Dataset:
        """The images of view ``view``, a dataset in item order."""
        return _ImageView(self.dataset, self.seed, view)

    def cache_key(self, view: int) -> Dict[str, Any]:
        """Everything about the data that changes the features of view
        ``view``: the dataset (type, root, split file, split, classes, a
        hash of its items' paths and labels, which the shots, seed and
        base/new selection decide), the pipeline (its config, else its
        repr), the view and the augmentation seed. The shots and seed are
        not part of it themselves: the whole test split is the same for
        every shot count and seed, and is extracted once for all."""
        inner = self.dataset
        items = [(str(inner.get_data_info(i).get('img_path')),
                  int(self.labels[i])) for i in range(len(inner))]
        digest = hashlib.sha256(json.dumps(items).encode('utf-8')).hexdigest()
        cfg = self._dataset_cfg or {}
        pipeline = cfg.get('pipeline')
        pipeline = _jsonable(pipeline) if pipeline is not None else repr(
            getattr(inner, 'pipeline', None))
        data_root = getattr(inner, 'data_root', None)
        return dict(
            dataset=type(inner).__name__,
            data_root=osp.abspath(data_root) if data_root else None,
            ann_file=str(getattr(inner, 'ann_file', '')),
            split=self.split,
            classes=list(self.metainfo.get('classes', ())),
            items=digest,
            num_items=len(inner),
            pipeline=pipeline,
            view=int(view),
            view_seed=self.seed)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({type(self.dataset).__name__} '
                f'{self.split}, {len(self)} items, {self.views} view(s))')


class _ImageView(Dataset):
    """The items of an image dataset under one view's augmentation seeds."""

    def __init__(self, dataset: Dataset, seed: int, view: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.view = view

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict:
        idx = int(idx)
        return self.dataset[SampleIndex(idx,
                                        sample_seed(self.seed, self.view,
                                                    idx))]


def _jsonable(value: Any) -> Any:
    """A config value as plain JSON data (tuples as lists, objects as their
    repr), for the cache key."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Compose):
        return repr(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
