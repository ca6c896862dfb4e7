# Copyright (c) mmprompt contributors. All rights reserved.
"""Per-sample seeds: the same crops and flips on any number of processes
and dataloader workers (mmprompt.datasets.samplers)."""
import json
import random

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from PIL import Image
from torch.utils.data import DataLoader

import mmprompt  # noqa: F401
from mmprompt.datasets import SampleIndex, sample_seed
from mmprompt.registry import DATA_SAMPLERS, DATASETS

AUGMENT = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation'),
    dict(type='RandomResizedCrop', scale=16, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]


@pytest.fixture(scope='module')
def noisy_tree(tmp_path_factory):
    """12 training images of noise, so that every crop differs."""
    root = tmp_path_factory.mktemp('noisy')
    rng = np.random.default_rng(0)
    split = {'train': [], 'val': [], 'test': []}
    for i in range(12):
        rel = f'c{i % 3}/{i:02d}.png'
        (root / 'images' / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3),
                                     dtype=np.uint8)).save(root / 'images' /
                                                           rel)
        split['train'].append([rel, i % 3, f'c{i % 3}'])
    (root / 'split.json').write_text(json.dumps(split))
    return root


def build_dataset(root, pipeline=AUGMENT):
    return DATASETS.build(
        dict(
            type='SplitJsonDataset',
            data_root=str(root),
            split_file='split.json',
            image_dir='images',
            split='train',
            pipeline=pipeline))


def build_sampler(dataset, monkeypatch, rank=0, world_size=1, seed=5):
    """The sampler a config's ``dict(type='DefaultSampler')`` gives in the
    'mmprompt' scope, on rank ``rank`` of ``world_size``."""
    import mmengine.dataset.sampler as sampler_module
    monkeypatch.setattr(sampler_module, 'get_dist_info', lambda:
                        (rank, world_size))
    from mmengine.registry import DATA_SAMPLERS as ROOT
    with DefaultScope.overwrite_default_scope('mmprompt'):
        # as the Runner builds it: mmengine's root registry, in the scope
        return ROOT.build(
            dict(type='DefaultSampler', shuffle=True),
            default_args=dict(dataset=dataset, seed=seed))


def batches(dataset, sampler, batch_size, num_workers=0):
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=lambda items: items)
    return [[(item['data_samples'].sample_idx, item['inputs'])
             for item in batch] for batch in loader]


def test_config_sampler_is_mmengines_with_seeded_indices(
        noisy_tree, monkeypatch):
    from mmengine.dataset import DefaultSampler as MMEngineSampler
    dataset = build_dataset(noisy_tree)
    sampler = build_sampler(dataset, monkeypatch)
    assert type(sampler) is DATA_SAMPLERS.get('DefaultSampler')
    plain = MMEngineSampler(dataset, shuffle=True, seed=5)
    for epoch in (0, 3):
        sampler.set_epoch(epoch)
        plain.set_epoch(epoch)
        got = list(sampler)
        assert got == list(plain)  # same order as mmengine's
        assert all(isinstance(i, SampleIndex) for i in got)
        assert [i.seed for i in got] == [sample_seed(5, epoch, i) for i in got]


def test_one_process_by_4_equals_two_by_2_with_augmentation(
        noisy_tree, monkeypatch):
    """The union of the ranks' batches of 2 is the single process's batch
    of 4, with pixel-identical crops and flips, whatever the generators'
    states and the number of workers; other epochs crop differently."""
    dataset = build_dataset(noisy_tree)
    one = build_sampler(dataset, monkeypatch)
    ranks = [
        build_sampler(dataset, monkeypatch, rank=r, world_size=2)
        for r in (0, 1)
    ]
    epochs = {}
    for epoch in (0, 1):
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch)
        np.random.seed(0)
        single = batches(dataset, one, 4)
        np.random.seed(1)  # another process: another global stream
        random.seed(1)
        torch.manual_seed(1)
        split = [
            batches(dataset, ranks[0], 2),
            batches(dataset, ranks[1], 2, num_workers=2)
        ]
        assert len(single) == len(split[0]) == len(split[1]) == 3
        for step, batch in enumerate(single):
            expected = dict(batch)
            got = dict(split[0][step] + split[1][step])
            assert sorted(got) == sorted(expected)
            for idx in expected:
                assert torch.equal(got[idx], expected[idx]), (epoch, idx)
        epochs[epoch] = {idx: img for b in single for idx, img in b}
    # the crops change with the epoch
    assert sum(not torch.equal(epochs[0][i], epochs[1][i])
               for i in epochs[0]) >= 10


def test_loading_leaves_the_process_generators_alone(noisy_tree):
    dataset = build_dataset(noisy_tree)
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    states = (random.getstate(), np.random.get_state()[1].copy(),
              torch.get_rng_state())
    first = dataset[SampleIndex(4, seed=11)]
    again = dataset[SampleIndex(4, seed=11)]
    other = dataset[SampleIndex(4, seed=12)]
    assert torch.equal(first['inputs'], again['inputs'])
    assert not torch.equal(first['inputs'], other['inputs'])
    assert first['data_samples'].sample_idx == 4
    assert type(first['data_samples'].sample_idx) is int
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])


def test_a_dataset_that_ignores_the_seeds_is_named(noisy_tree, monkeypatch):
    import logging

    from mmengine.dataset import RepeatDataset
    from mmengine.logging import MMLogger
    messages = []

    class Collect(logging.Handler):

        def emit(self, record):
            messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    try:
        wrapped = RepeatDataset(build_dataset(noisy_tree), times=2)
        build_sampler(wrapped, monkeypatch)
        build_sampler(build_dataset(noisy_tree), monkeypatch)
    finally:
        logger.removeHandler(handler)
    said = [m for m in messages if 'does not seed' in m]
    assert len(said) == 1 and 'RepeatDataset' in said[0]
