# Copyright (c) mmprompt contributors. All rights reserved.
"""The messages users see when a dataset is not where it should be."""
import json

import pytest
from dataset_trees import make_image

import mmprompt  # noqa: F401
from mmprompt.registry import DATASETS


def build(**cfg):
    cfg.setdefault('serialize_data', False)
    return DATASETS.build(cfg)


def test_missing_data_root(tmp_path):
    missing = tmp_path / 'nowhere' / 'oxford_pets'
    with pytest.raises(FileNotFoundError) as e:
        build(type='OxfordPets', data_root=str(missing))
    assert str(missing) in str(e.value)
    assert 'docs/datasets.md' in str(e.value)


def test_missing_image_folder(tmp_path):
    (tmp_path / 'eurosat').mkdir()
    with pytest.raises(FileNotFoundError, match='2750.*docs/datasets.md'):
        build(type='EuroSAT', data_root=str(tmp_path / 'eurosat'))


def test_missing_official_files_named(tmp_path):
    root = tmp_path / 'oxford_pets'
    (root / 'images').mkdir(parents=True)
    with pytest.raises(
            FileNotFoundError,
            match='split_zhou_OxfordPets.json.*trainval.txt'):
        build(type='OxfordPets', data_root=str(root))


def test_missing_split_file(tmp_path):
    (tmp_path / 'imgs').mkdir()
    with pytest.raises(FileNotFoundError, match='mine.json.*datasets.md'):
        build(
            type='SplitJsonDataset',
            data_root=str(tmp_path),
            split_file='mine.json',
            image_dir='imgs')


@pytest.mark.parametrize('content,match', [
    ('{"train": [', 'not valid json'),
    ('[]', 'json object'),
    ('{"train": [], "val": []}', r"misses the split\(s\) \['test'\]"),
    ('{"train": [["a.jpg", 0, "cat"], ["b.jpg", "0", "cat"]], "val": [], '
     '"test": []}', 'entry 1 of "train"'),
    ('{"train": [["a.jpg", 0]], "val": [], "test": []}', 'entry 0 of'),
    ('{"train": [["a.jpg", 0, "cat"]], "val": [], '
     '"test": [["c.jpg", 0, "dog"]]}',
     'label 0 is called \'cat\'.*\'dog\' in entry 0 of "test"'),
])
def test_malformed_split_file(tmp_path, content, match):
    (tmp_path / 'split.json').write_text(content)
    with pytest.raises(ValueError, match=match) as e:
        build(type='SplitJsonDataset', data_root=str(tmp_path))
    assert 'split.json' in str(e.value)


def test_label_gap_reported(tmp_path):
    content = {
        'train': [['a.jpg', 0, 'cat'], ['b.jpg', 2, 'dog']],
        'val': [],
        'test': []
    }
    (tmp_path / 'split.json').write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r'label\(s\) \[1\]'):
        build(
            type='SplitJsonDataset',
            data_root=str(tmp_path),
            check_images='none')


def test_missing_listed_image(tmp_path):
    content = {
        'train': [['cat/a.jpg', 0, 'cat'], ['cat/b.jpg', 0, 'cat']],
        'val': [],
        'test': []
    }
    (tmp_path / 'split.json').write_text(json.dumps(content))
    make_image(tmp_path / 'cat' / 'a.jpg')
    # 'first' only looks at the first image of each class
    ds = build(
        type='SplitJsonDataset', data_root=str(tmp_path), check_images='first')
    assert len(ds) == 2
    with pytest.raises(FileNotFoundError, match='cat/b.jpg'):
        build(
            type='SplitJsonDataset',
            data_root=str(tmp_path),
            check_images='all')


def test_missing_listed_image_first(tmp_path):
    content = {'train': [['cat/a.jpg', 0, 'cat']], 'val': [], 'test': []}
    (tmp_path / 'split.json').write_text(json.dumps(content))
    with pytest.raises(FileNotFoundError, match='cat/a.jpg'):
        build(type='SplitJsonDataset', data_root=str(tmp_path))
    # check_images='none' skips the check
    ds = build(
        type='SplitJsonDataset', data_root=str(tmp_path), check_images='none')
    assert len(ds) == 1


@pytest.mark.parametrize('kwargs,match', [
    (dict(split='training'), "split must be one of.*'training'"),
    (dict(subsample_classes='half'),
     "subsample_classes must be one of.*'all', 'base', 'new'.*'half'"),
    (dict(num_shots=0), 'num_shots must be -1.*got 0'),
    (dict(num_shots=-2), 'num_shots must be -1.*got -2'),
    (dict(num_shots='16'), 'num_shots must be -1'),
    (dict(check_images='some'), 'check_images must be one of'),
    (dict(seed=1.5), 'seed must be an int'),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(type='OxfordPets', data_root=str(tmp_path), **kwargs)
