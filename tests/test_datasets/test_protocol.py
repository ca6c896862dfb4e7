# Copyright (c) mmprompt contributors. All rights reserved.
"""Few-shot and base/new selections against the original's outputs."""
import json
import os.path as osp
import random

import pytest

import mmprompt  # noqa: F401
from mmprompt.datasets.utils import (DataItem, read_split_file,
                                     sample_few_shot, split_trainval,
                                     subsample_classes)
from mmprompt.registry import DATASETS

SHOTS_SEEDS = [(k, s) for k in (1, 2, 4, 8, 16) for s in (1, 2, 3)]


def build_pets(root, **kwargs):
    cfg = dict(
        type='OxfordPets',
        data_root=str(root),
        check_images='none',
        serialize_data=False)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def names(dataset):
    return [
        osp.basename(dataset.get_data_info(i)['img_path'])
        for i in range(len(dataset))
    ]


@pytest.mark.parametrize('shots,seed', SHOTS_SEEDS)
def test_fewshot_matches_original(toy_pets, golden_protocol, shots, seed):
    golden = json.loads((golden_protocol / 'fewshot.json').read_text())
    expected = golden[f'{shots}-shot_seed-{seed}']
    for split in ('train', 'val'):
        ds = build_pets(toy_pets, split=split, num_shots=shots, seed=seed)
        assert names(ds) == expected[split], split
    # The test split is never sampled.
    test = build_pets(toy_pets, split='test', num_shots=shots, seed=seed)
    assert len(test) == 57


def test_fewshot_labels_and_classes(toy_pets):
    ds = build_pets(toy_pets, split='train', num_shots=16, seed=1)
    classes = ds.metainfo['classes']
    assert classes == ('beagle', 'bengal', 'boxer', 'chihuahua', 'persian',
                       'pug', 'sphynx')
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert osp.basename(
            info['img_path']).startswith(classes[info['gt_label']] + '_')
    # chihuahua has 3 train images < 16: all kept, the others 16 each.
    assert sorted(ds.get_gt_labels().tolist()).count(3) == 3
    assert len(ds) == 6 * 16 + 3
    assert all(
        p.startswith(str(toy_pets / 'images') + osp.sep)
        for p in (ds.get_data_info(i)['img_path'] for i in range(len(ds))))


def test_fewshot_warns_on_small_class(toy_pets, monkeypatch):
    import mmprompt.datasets.utils as utils
    messages = []
    monkeypatch.setattr(utils, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    build_pets(toy_pets, split='train', num_shots=4, seed=1)
    # chihuahua has 3 train and 3 val images, fewer than 4 in both.
    assert len(messages) == 2
    assert all("'chihuahua'" in m for m in messages)


@pytest.mark.parametrize('shots', [16, -1])
def test_base_new_test_split_matches_original(toy_pets, golden_protocol,
                                              shots):
    golden = json.loads((golden_protocol / 'base_new_test.json').read_text())
    for subsample in ('base', 'new'):
        ds = build_pets(
            toy_pets,
            split='test',
            num_shots=shots,
            seed=1,
            subsample_classes=subsample)
        classes = ds.metainfo['classes']
        got = [[
            osp.basename(ds.get_data_info(i)['img_path']),
            ds.get_data_info(i)['gt_label'],
            classes[ds.get_data_info(i)['gt_label']]
        ] for i in range(len(ds))]
        assert got == golden[subsample], subsample
    base = build_pets(toy_pets, split='train', subsample_classes='base')
    new = build_pets(toy_pets, split='val', subsample_classes='new')
    assert base.metainfo['classes'] == ('beagle', 'bengal', 'boxer',
                                        'chihuahua')
    assert new.metainfo['classes'] == ('persian', 'pug', 'sphynx')


def test_base_new_after_fewshot_val(toy_pets, golden_protocol):
    """Val of 'new' is the few-shot val of those classes, relabelled."""
    golden = json.loads((golden_protocol / 'fewshot.json').read_text())
    val_names = golden['2-shot_seed-3']['val']
    new_names = [
        n for n in val_names if n.split('_')[0] in ('persian', 'pug', 'sphynx')
    ]
    ds = build_pets(
        toy_pets, split='val', num_shots=2, seed=3, subsample_classes='new')
    assert names(ds) == new_names
    assert set(ds.get_gt_labels().tolist()) == {0, 1, 2}


def test_subsample_odd_count_and_relabel():
    items = [DataItem(f'{y}.jpg', y, f'c{y}') for y in (4, 0, 2, 6, 8)]
    base = subsample_classes({'train': items}, 'base')['train']
    new = subsample_classes({'train': items}, 'new')['train']
    # sorted labels 0 2 4 6 8: ceil(5 / 2) = 3 base.
    assert [(i.label, i.classname) for i in base] == [(2, 'c4'), (0, 'c0'),
                                                      (1, 'c2')]
    assert [(i.label, i.classname) for i in new] == [(0, 'c6'), (1, 'c8')]
    with pytest.raises(ValueError, match='subsample_classes must be one of'):
        subsample_classes({'train': items}, 'half')


def test_sample_few_shot_is_python_random_sample():
    items = [DataItem(f'{y}_{i}', y, str(y)) for i in range(7) for y in (1, 0)]
    rng = random.Random(5)
    got = sample_few_shot(items, 3, rng)
    ref = random.Random(5)
    groups = {
        1: [i for i in items if i.label == 1],
        0: [i for i in items if i.label == 0]
    }
    expected = ref.sample(groups[1], 3) + ref.sample(groups[0], 3)
    assert got == expected


def test_split_trainval_rounding():
    items = [
        DataItem(f'{y}_{i}', y, str(y)) for y in (0, 1) for i in range(12)
    ] + [DataItem(f'2_{i}', 2, '2') for i in range(3)]
    train, val = split_trainval(items, random.Random(1))
    # round(12 * 0.2) = 2, round(3 * 0.2) = 1
    assert [i.label for i in val].count(0) == 2
    assert [i.label for i in val].count(2) == 1
    assert len(train) + len(val) == len(items)
    assert not set(train) & set(val)
    with pytest.raises(ValueError, match='too few'):
        split_trainval(items[:2], random.Random(1))


def test_read_split_file_golden(golden_protocol):
    splits = read_split_file(str(golden_protocol / 'split_zhou_Toy.json'))
    assert [len(splits[k]) for k in ('train', 'val', 'test')] == [123, 39, 57]
    assert splits['train'][0] == DataItem('sphynx_train_8.jpg', 6, 'sphynx')
