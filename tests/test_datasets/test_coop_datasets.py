# Copyright (c) mmprompt contributors. All rights reserved.
"""Each dataset on a tiny tree in its original layout."""
import json
import os.path as osp
from collections import Counter
from pathlib import Path

import mat4py
import pytest
from dataset_trees import make_image, make_images, write_lines
from mmengine.config import Config

import mmprompt  # noqa: F401
from mmprompt.datasets.utils import read_split_file
from mmprompt.registry import DATASETS


def build(type_, root, **kwargs):
    cfg = dict(type=type_, data_root=str(root), serialize_data=False)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def labels_names(ds):
    classes = ds.metainfo['classes']
    return Counter(classes[ds.get_data_info(i)['gt_label']]
                   for i in range(len(ds)))


def all_splits(type_, root, **kwargs):
    return {
        s: build(type_, root, split=s, **kwargs)
        for s in ('train', 'val', 'test')
    }


def assert_paths_exist(ds):
    for i in range(len(ds)):
        assert osp.isfile(ds.get_data_info(i)['img_path'])


# ---------------------------------------------------------------------------
# 50/20/30 random splits created from class folders
# ---------------------------------------------------------------------------
def make_class_tree(image_dir, folders, n=10):
    for folder in folders:
        make_images(image_dir / folder,
                    [f'{folder}_{i:02d}.jpg' for i in range(n)])


def test_caltech101_creates_split_with_renames(tmp_path):
    root = tmp_path / 'caltech-101'
    make_class_tree(root / '101_ObjectCategories', [
        'BACKGROUND_Google', 'Faces_easy', 'accordion', 'airplanes', 'Faces',
        'Leopards', 'Motorbikes'
    ])
    splits = all_splits('Caltech101', root)
    # sorted folders (capitals first), ignored ones dropped, then renamed
    expected = ('face', 'leopard', 'motorbike', 'accordion', 'airplane')
    for split, n in (('train', 5), ('val', 2), ('test', 3)):
        ds = splits[split]
        assert ds.metainfo['classes'] == expected
        assert labels_names(ds) == {c: n for c in expected}
        assert_paths_exist(ds)
    written = read_split_file(str(root / 'split_zhou_Caltech101.json'))
    assert {it.classname for it in written['train']} == set(expected)
    assert written['train'][0].impath.split('/')[0] == 'Faces'
    # Once written, the file is read back: the same images for any seed.
    again = build('Caltech101', root, split='test', seed=7)
    assert [again.get_data_info(i) for i in range(len(again))
            ] == [splits['test'].get_data_info(i) for i in range(len(again))]


def test_eurosat_new_class_names(tmp_path):
    root = tmp_path / 'eurosat'
    make_class_tree(root / '2750', ['SeaLake', 'AnnualCrop', 'Forest'], n=4)
    ds = build('EuroSAT', root, split='train')
    assert ds.metainfo['classes'] == ('Annual Crop Land', 'Forest',
                                      'Sea or Lake')
    # round(4 * .5) = 2 train, round(4 * .2) = 1 val, 1 test per class
    assert len(ds) == 6
    assert len(build('EuroSAT', root, split='val')) == 3


@pytest.mark.parametrize('type_,root_name', [('DescribableTextures', 'dtd'),
                                             ('DTD', 'dtd'),
                                             ('Food101', 'food-101')])
def test_folder_name_classes(tmp_path, type_, root_name):
    root = tmp_path / root_name
    make_class_tree(root / 'images', ['waffled', 'banded', 'apple_pie'], n=5)
    ds = build(type_, root, split='test')
    assert ds.metainfo['classes'] == ('apple_pie', 'banded', 'waffled')
    # round(2.5) = 2 (half to even), round(1.0) = 1, test = 2
    assert len(ds) == 6
    assert type(ds).__name__ in ('DescribableTextures', 'Food101')


def test_created_split_same_as_original_algorithm(tmp_path):
    """The split equals an independent re-statement of the original."""
    import random
    root = tmp_path / 'food-101'
    make_class_tree(root / 'images', ['b', 'a'], n=7)
    splits = all_splits('Food101', root, seed=3)
    rng = random.Random(3)
    expected = {'train': [], 'val': [], 'test': []}
    for cls in ('a', 'b'):
        ims = sorted(f'{cls}_{i:02d}.jpg' for i in range(7))
        rng.shuffle(ims)
        # round(3.5) = 4, round(1.4) = 1
        expected['train'] += ims[:4]
        expected['val'] += ims[4:5]
        expected['test'] += ims[5:]
    for split, ds in splits.items():
        got = [
            osp.basename(ds.get_data_info(i)['img_path'])
            for i in range(len(ds))
        ]
        assert got == expected[split], split


# ---------------------------------------------------------------------------
# Datasets with official files
# ---------------------------------------------------------------------------
def test_oxford_pets_from_annotations(tmp_path):
    root = tmp_path / 'oxford_pets'
    lines = []
    for cls_id, breed in ((1, 'Abyssinian'), (2, 'american_bulldog'),
                          (3, 'great_pyrenees')):
        for i in range(1, 6):
            lines.append(f'{breed}_{i} {cls_id} 1 {cls_id}')
            make_image(root / 'images' / f'{breed}_{i}.jpg')
    write_lines(root / 'annotations' / 'trainval.txt', lines)
    write_lines(root / 'annotations' / 'test.txt', lines[::5])
    splits = all_splits('OxfordPets', root)
    expected = ('abyssinian', 'american_bulldog', 'great_pyrenees')
    assert splits['train'].metainfo['classes'] == expected
    # 5 trainval per class: round(5 * 0.2) = 1 val
    assert labels_names(splits['val']) == {c: 1 for c in expected}
    assert labels_names(splits['train']) == {c: 4 for c in expected}
    assert len(splits['test']) == 3
    assert osp.isfile(root / 'split_zhou_OxfordPets.json')


def test_stanford_cars_from_mat_files(tmp_path):
    root = tmp_path / 'stanford_cars'
    names = ['AM General Hummer SUV 2000', 'Tesla Model S Sedan 2012']
    (root / 'devkit').mkdir(parents=True)
    mat4py.savemat(
        str(root / 'devkit' / 'cars_meta.mat'), {'class_names': names})
    fnames = [f'{i:05d}.jpg' for i in range(1, 11)]
    mat4py.savemat(
        str(root / 'devkit' / 'cars_train_annos.mat'), {
            'annotations': {
                'bbox_x1': [1] * 10,
                'class': [1, 2] * 5,
                'fname': fnames
            }
        })
    mat4py.savemat(
        str(root / 'cars_test_annos_withlabels.mat'),
        {'annotations': {
            'class': [2, 1],
            'fname': fnames[:2]
        }})
    make_images(root / 'cars_train', fnames)
    make_images(root / 'cars_test', fnames[:2])
    splits = all_splits('StanfordCars', root)
    expected = ('2000 AM General Hummer SUV', '2012 Tesla Model S Sedan')
    assert splits['test'].metainfo['classes'] == expected
    assert len(splits['train']) == 8 and len(splits['val']) == 2
    test = splits['test']
    assert [test.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]
    assert test.get_data_info(0)['img_path'] == osp.join(
        str(root), 'cars_test', '00001.jpg')
    content = json.loads((root / 'split_zhou_StanfordCars.json').read_text())
    # paths relative to data_root, as the released file
    assert content['test'][0] == ['cars_test/00001.jpg', 1, expected[1]]


def test_oxford_flowers_from_mat(tmp_path):
    root = tmp_path / 'oxford_flowers'
    labels = [2, 1, 2, 1, 2, 1, 2, 1, 2, 1]
    (root).mkdir()
    mat4py.savemat(str(root / 'imagelabels.mat'), {'labels': labels})
    (root / 'cat_to_name.json').write_text(
        json.dumps({
            '1': 'pink primrose',
            '2': 'hard-leaved pocket orchid'
        }))
    make_images(root / 'jpg', [f'image_{i:05d}.jpg' for i in range(1, 11)])
    splits = all_splits('OxfordFlowers', root)
    assert splits['train'].metainfo['classes'] == ('pink primrose',
                                                   'hard-leaved pocket orchid')
    # 5 per class: round(2.5) = 2, round(1.0) = 1, 2 test
    assert [len(splits[s]) for s in ('train', 'val', 'test')] == [4, 2, 4]
    ds = splits['train']
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        number = int(osp.basename(info['img_path'])[6:11])
        assert labels[number - 1] - 1 == info['gt_label']


def test_sun397_reversed_words(tmp_path):
    root = tmp_path / 'sun397'
    classes = ['/a/abbey', '/b/bakery/shop', '/t/theater/indoor_procenium']
    write_lines(root / 'ClassName.txt', classes)
    train, test = [], []
    for c in classes:
        for i in range(5):
            rel = f'{c}/sun_{i}.jpg'
            make_image(root / 'SUN397' / rel[1:])
            (train if i < 4 else test).append(rel)
    write_lines(root / 'Training_01.txt', train)
    write_lines(root / 'Testing_01.txt', test)
    splits = all_splits('SUN397', root)
    assert splits['train'].metainfo['classes'] == ('abbey', 'shop bakery',
                                                   'indoor_procenium theater')
    # 4 trainval per class: round(0.8) = 1 val
    assert [len(splits[s]) for s in ('train', 'val', 'test')] == [9, 3, 3]
    assert_paths_exist(splits['val'])


def test_ucf101_camel_case(tmp_path):
    root = tmp_path / 'ucf101'
    lists = root / 'ucfTrainTestlist'
    write_lines(lists / 'classInd.txt', ['1 ApplyEyeMakeup', '2 YoYo'])
    train, test = [], []
    for cls_id, action in ((1, 'ApplyEyeMakeup'), (2, 'YoYo')):
        renamed = {
            'ApplyEyeMakeup': 'Apply_Eye_Makeup',
            'YoYo': 'Yo_Yo'
        }[action]
        for g in range(6):
            video = f'v_{action}_g{g:02d}_c01'
            make_image(root / 'UCF-101-midframes' / renamed / f'{video}.jpg')
            if g < 5:
                train.append(f'{action}/{video}.avi {cls_id}')
            else:
                test.append(f'{action}/{video}.avi')
    write_lines(lists / 'trainlist01.txt', train)
    write_lines(lists / 'testlist01.txt', test)
    splits = all_splits('UCF101', root)
    assert splits['test'].metainfo['classes'] == ('Apply_Eye_Makeup', 'Yo_Yo')
    assert [len(splits[s]) for s in ('train', 'val', 'test')] == [8, 2, 2]
    for ds in splits.values():
        assert_paths_exist(ds)


def test_fgvc_aircraft_official_txt(tmp_path):
    root = tmp_path / 'fgvc_aircraft'
    variants = ['707-320', 'F-16A/B', 'Tu-154']
    write_lines(root / 'variants.txt', variants)
    image_id = 1000000
    for split in ('train', 'val', 'test'):
        lines = []
        for v in variants[::-1]:
            for _ in range(2):
                image_id += 1
                lines.append(f'{image_id} {v}')
                make_image(root / 'images' / f'{image_id}.jpg')
        write_lines(root / f'images_variant_{split}.txt', lines)
    splits = all_splits('FGVCAircraft', root, num_shots=1, seed=2)
    assert splits['train'].metainfo['classes'] == tuple(variants)
    assert [len(splits[s]) for s in ('train', 'val', 'test')] == [3, 3, 6]
    assert not (root / 'split_zhou_FGVCAircraft.json').exists()
    base = build('FGVCAircraft', root, split='test', subsample_classes='base')
    assert base.metainfo['classes'] == ('707-320', 'F-16A/B')
    assert labels_names(base) == {'707-320': 2, 'F-16A/B': 2}


# ---------------------------------------------------------------------------
# A user's own split file
# ---------------------------------------------------------------------------
def test_split_json_dataset(split_tree):
    root = split_tree['root']
    ds = build(
        'SplitJsonDataset',
        root,
        split_file='split.json',
        image_dir='imgs',
        split='train',
        num_shots=2,
        seed=1)
    assert ds.metainfo['classes'] == tuple(split_tree['classes'])
    assert labels_names(ds) == {c: 2 for c in split_tree['classes']}
    assert_paths_exist(ds)
    new = build(
        'SplitJsonDataset',
        root,
        split_file=str(root / 'split.json'),
        image_dir=str(root / 'imgs'),
        split='test',
        subsample_classes='new')
    assert new.metainfo['classes'] == ('dog', )
    assert len(new) == 3


def config_pipelines():
    return Config.fromfile(
        str(
            Path(__file__).resolve().parents[2] / 'configs' / '_base_' /
            'datasets' / 'pipelines.py'))


def test_pipeline_runs_on_items(split_tree):
    ds = build(
        'SplitJsonDataset',
        split_tree['root'],
        image_dir='imgs',
        split='test',
        pipeline=config_pipelines().test_pipeline)
    out = ds[0]
    assert tuple(out['inputs'].shape) == (3, 224, 224)
    assert out['data_samples'].gt_label.item() == 0
