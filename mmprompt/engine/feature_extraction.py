# Copyright (c) mmprompt contributors. All rights reserved.
"""Extract the frozen CLIP features of a ``CachedFeatureDataset`` once,
or read them from the feature cache."""
import logging
import os.path as osp
from typing import Optional

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import (all_gather_object, barrier, broadcast_object_list,
                           get_dist_info)
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader, Subset

from mmprompt.utils import FeatureCache

__all__ = ['prepare_features', 'extract_view_features']


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@torch.no_grad()
def extract_view_features(model,
                          images,
                          batch_size: int = 64,
                          num_workers: int = 0,
                          desc: str = '') -> torch.Tensor:
    """The raw features ``(N, D)`` of a dataset of images, in item order.

    Under DDP rank ``r`` of ``w`` extracts items ``r, r + w, ...``; the
    parts are gathered and put back in item order on every rank.

    Args:
        model: An ``AdapterClassifier`` (or its wrapper): its
            ``data_preprocessor`` and ``extract_features``.
        images (Dataset): Items of packed images.
        batch_size (int): Images per forward. Defaults to 64.
        num_workers (int): Loader workers. Defaults to 0.
        desc (str): What is extracted, for the log.

    Returns:
        Tensor: ``(N, D)`` fp32 on the CPU.
    """
    model = _unwrap(model)
    rank, world = get_dist_info()
    n = len(images)
    mine = list(range(rank, n, world))
    loader = DataLoader(
        Subset(images, mine),
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
        collate_fn=pseudo_collate)
    if rank == 0:
        print_log(
            f'feature cache: extracting {desc} ({n} images)', logger='current')
    bar = ProgressBar(n) if rank == 0 and n else None
    was_training = model.training
    model.eval()
    parts = []
    try:
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            parts.append(model.extract_features(data['inputs']).cpu())
            if bar is not None:
                for _ in range(min(len(parts[-1]) * world, n - bar.completed)):
                    bar.update()
    finally:
        model.train(was_training)
    if bar is not None:
        bar.file.write('\n')
    mine_features = torch.cat(parts) if parts else None
    if world == 1:
        return mine_features
    gathered = all_gather_object(mine_features)
    dim = next(g.shape[1] for g in gathered if g is not None)
    out = torch.empty(n, dim)
    for r, part in enumerate(gathered):
        if part is not None:
            out[r::world] = part
    return out


def prepare_features(runner,
                     dataset,
                     cache_dir: Optional[str] = None,
                     batch_size: int = 64,
                     num_workers: int = 0) -> int:
    """Give ``dataset`` (a ``CachedFeatureDataset``) its features: from
    the cache where a file of the same key exists, else extracted with the
    runner's model and written to the cache (by rank 0, atomically).

    Args:
        runner (Runner): Its model (an ``AdapterClassifier``, whose
            ``feature_key()`` is the CLIP's part of the key) and work dir.
        dataset (CachedFeatureDataset): The dataset; left as it is if it
            has its features already.
        cache_dir (str, optional): The cache folder. Defaults to None:
            ``{work_dir}/feature_cache``.
        batch_size (int): Images per forward. Defaults to 64.
        num_workers (int): Loader workers. Defaults to 0.

    Returns:
        int: The number of views extracted (0: all read from the cache).
    """
    if dataset.features is not None:
        return 0
    model = _unwrap(runner.model)
    if not hasattr(model, 'feature_key'):
        raise TypeError(
            f'CachedFeatureDataset needs a model with feature_key() and '
            f'extract_features() (AdapterClassifier), got '
            f'{type(model).__name__}')
    cache = FeatureCache(
        cache_dir or osp.join(runner.work_dir, 'feature_cache'))
    clip_key = model.feature_key()
    rank, _ = get_dist_info()
    views, extracted = [], 0
    for view in range(dataset.views):
        key = dict(clip=clip_key, data=dataset.cache_key(view))
        # Rank 0 decides, so that every rank extracts or none does.
        features = cache.load(key) if rank == 0 else None
        if features is not None and tuple(
                features.shape[:1]) != (len(dataset), ):
            print_log(
                f'feature cache: not using {cache.path(key)}: it holds '
                f'{features.shape[0]} items, the dataset {len(dataset)}',
                logger='current',
                level=logging.WARNING)
            features = None
        found = [features is not None]
        broadcast_object_list(found)
        if found[0]:
            shared = [features]
            broadcast_object_list(shared)
            features = shared[0]
        else:
            features = extract_view_features(
                model,
                dataset.image_view(view),
                batch_size,
                num_workers,
                desc=f'{dataset!r}, view {view + 1} of {dataset.views}')
            if rank == 0:
                path = cache.save(key, features)
                print_log(f'feature cache: wrote {path}', logger='current')
            barrier()
            extracted += 1
        views.append(features.float())
    if rank == 0 and extracted < dataset.views:
        print_log(
            f'feature cache: {dataset.views - extracted} view(s) of '
            f'{dataset!r} read from {cache.folder}',
            logger='current')
    dataset.set_features(torch.stack(views))
    return extracted
