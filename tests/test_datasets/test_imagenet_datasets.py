# Copyright (c) mmprompt contributors. All rights reserved.
"""ImageNet and its variants on tiny trees, and registry scoping."""
import os.path as osp

import pytest
from dataset_trees import make_images, write_lines
from mmengine.registry import DefaultScope

import mmprompt  # noqa: F401
from mmprompt.registry import DATASETS

# Deliberately not in sorted-wnid order: labels follow the sorted folders.
CLASSNAMES = [
    'n03000000 pickup truck', 'n01000000 tench', 'n02000000 great white shark',
    'n04000000 goldfish', 'n05000000 tiger shark'
]


def build(type_, root, **kwargs):
    cfg = dict(type=type_, data_root=str(root), serialize_data=False)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def classes_of_items(ds):
    classes = ds.metainfo['classes']
    return [classes[ds.get_data_info(i)['gt_label']] for i in range(len(ds))]


@pytest.fixture
def imagenet(tmp_path):
    root = tmp_path / 'imagenet'
    write_lines(root / 'classnames.txt', CLASSNAMES)
    for line in CLASSNAMES[:4]:
        wnid = line.split(' ')[0]
        make_images(root / 'images' / 'train' / wnid,
                    [f'{wnid}_{i}.JPEG' for i in range(5)])
        make_images(root / 'images' / 'val' / wnid,
                    [f'val_{wnid}_{i}.JPEG' for i in range(2)])
    return root


def test_imagenet_sorted_wnids(imagenet):
    train = build('ImageNet', imagenet, split='train')
    expected = ('tench', 'great white shark', 'pickup truck', 'goldfish')
    assert train.metainfo['classes'] == expected
    assert len(train) == 20
    for i in range(len(train)):
        info = train.get_data_info(i)
        assert osp.basename(osp.dirname(info['img_path'])) == sorted(
            ln.split(' ')[0] for ln in CLASSNAMES[:4])[info['gt_label']]
    test = build('ImageNet', imagenet, split='test', num_shots=1)
    val = build('ImageNet', imagenet, split='val', num_shots=1)
    assert test.metainfo['classes'] == expected
    # val is the test set and is never sampled
    assert len(test) == len(val) == 8
    assert [val.get_data_info(i)
            for i in range(8)] == [test.get_data_info(i) for i in range(8)]


def test_imagenet_fewshot_and_base_new(imagenet):
    import random
    train = build('ImageNet', imagenet, split='train', num_shots=2, seed=3)
    rng = random.Random(3)
    expected = []
    for wnid in sorted(ln.split(' ')[0] for ln in CLASSNAMES[:4]):
        expected += rng.sample([f'{wnid}_{i}.JPEG' for i in range(5)], 2)
    assert [
        osp.basename(train.get_data_info(i)['img_path'])
        for i in range(len(train))
    ] == expected
    new = build('ImageNet', imagenet, split='test', subsample_classes='new')
    assert new.metainfo['classes'] == ('pickup truck', 'goldfish')
    assert classes_of_items(new) == ['pickup truck'] * 2 + ['goldfish'] * 2


def test_imagenet_v2_numeric_folders(tmp_path):
    root = tmp_path / 'imagenetv2'
    lines = sorted(CLASSNAMES)[:3]  # the file is in sorted-wnid order
    write_lines(root / 'classnames.txt', lines)
    image_dir = root / 'imagenetv2-matched-frequency-format-val'
    for label in (2, 0, 1):
        make_images(image_dir / str(label),
                    [f'{label}_{i}.jpeg' for i in range(2)])
    ds = build('ImageNetV2', root)
    assert ds.metainfo['classes'] == ('tench', 'great white shark',
                                      'pickup truck')
    assert classes_of_items(ds)[::2] == list(ds.metainfo['classes'])
    assert len(ds) == 6


def test_imagenet_sketch(tmp_path):
    root = tmp_path / 'imagenet-sketch'
    write_lines(root / 'classnames.txt', CLASSNAMES)
    for line in CLASSNAMES:
        wnid = line.split(' ')[0]
        make_images(root / 'images' / wnid, ['1.jpg', '2.jpg'])
    ds = build('ImageNetSketch', root)
    assert ds.metainfo['classes'] == ('tench', 'great white shark',
                                      'pickup truck', 'goldfish',
                                      'tiger shark')
    assert len(ds) == 10


@pytest.mark.parametrize('type_,root_name,image_dir',
                         [('ImageNetA', 'imagenet-adversarial', 'imagenet-a'),
                          ('ImageNetR', 'imagenet-rendition', 'imagenet-r')])
def test_imagenet_a_r_subset(tmp_path, type_, root_name, image_dir):
    root = tmp_path / root_name
    write_lines(root / 'classnames.txt', CLASSNAMES)
    # a subset of the wnids, and the README of the release
    for wnid in ('n05000000', 'n02000000'):
        make_images(root / image_dir / wnid, ['a.jpg', 'b.jpg', 'c.jpg'])
    write_lines(root / image_dir / 'README.txt', ['about the data'])
    ds = build(type_, root)
    # only the present classes, labels 0.. by sorted wnid
    assert ds.metainfo['classes'] == ('great white shark', 'tiger shark')
    assert classes_of_items(
        ds) == ['great white shark'] * 3 + ['tiger shark'] * 3


def test_variants_are_test_only(tmp_path):
    with pytest.raises(ValueError, match='test-only'):
        build('ImageNetA', tmp_path, num_shots=16)
    with pytest.raises(ValueError, match='test-only'):
        build('ImageNetR', tmp_path, subsample_classes='base')


def test_imagenet_unknown_wnid(imagenet):
    make_images(imagenet / 'images' / 'val' / 'n09999999', ['x.jpg'])
    with pytest.raises(ValueError, match='n09999999.*classnames.txt'):
        build('ImageNet', imagenet, split='test')


def test_scoped_lookup_keeps_mmpretrain_classes():
    from mmpretrain.datasets import Caltech101 as MMPretrainCaltech101
    from mmpretrain.datasets import ImageNet as MMPretrainImageNet
    from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS

    from mmprompt.datasets import Caltech101, DescribableTextures, ImageNet
    with DefaultScope.overwrite_default_scope('mmprompt'):
        assert DATASETS.get('Caltech101') is Caltech101
        assert DATASETS.get('ImageNet') is ImageNet
        assert DATASETS.get('DTD') is DescribableTextures
        assert DATASETS.get('mmpretrain.Caltech101') is MMPretrainCaltech101
        assert DATASETS.get('mmpretrain.ImageNet') is MMPretrainImageNet
        assert MMPRETRAIN_DATASETS.get('mmprompt.Caltech101') is Caltech101
        # what mmpretrain does not define resolves through the parent
        assert DATASETS.get('CustomDataset') is MMPRETRAIN_DATASETS.get(
            'CustomDataset')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert MMPRETRAIN_DATASETS.get('Caltech101') is MMPretrainCaltech101
