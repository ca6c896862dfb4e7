# Copyright (c) mmprompt contributors. All rights reserved.
"""The ten fine-grained datasets of CoOp, with the original's splits.

Each class reads ``split_zhou_<Name>.json`` (the released split files, see
docs/datasets.md) from ``data_root``. When that file is missing it is
created from the official files exactly as the original code does it and
written next to the data; its random parts depend on the seed and cannot
match the released file.
"""
import json
import os.path as osp
import random
import re
from typing import Any, Dict, List, Optional

from mmprompt.registry import DATASETS
from .base_dataset import CoOpDataset
from .utils import (DataItem, check_file, join_items, read_and_split_data,
                    split_trainval)


def _loadmat(path: str, dataset: str) -> Dict[str, Any]:
    """Read a MATLAB v5 file with mat4py (scipy is not a dependency)."""
    check_file(path, 'annotation file', dataset)
    from mat4py import loadmat
    return loadmat(path)


def _as_list(value: Any) -> List[Any]:
    """Flatten what mat4py returns for a row or column vector.

    mat4py returns a scalar for a 1x1 array, a flat list for a row vector and
    a list of one-element lists for a column vector.
    """
    if not isinstance(value, list):
        return [value]
    return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in value]


def _read_lines(path: str, dataset: str) -> List[str]:
    check_file(path, 'annotation file', dataset)
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


class _RandomSplitDataset(CoOpDataset):
    """A dataset whose split the original drew 50/20/30 from class folders."""

    IGNORED_FOLDERS: tuple = ()
    NEW_CNAMES: Optional[Dict[str, str]] = None

    def create_splits(self, rng: random.Random) -> Dict[str, List[DataItem]]:
        train, val, test = read_and_split_data(
            self.img_prefix,
            rng,
            p_trn=0.5,
            p_val=0.2,
            ignored=self.IGNORED_FOLDERS,
            new_cnames=self.NEW_CNAMES)
        return dict(train=train, val=val, test=test)


@DATASETS.register_module()
class Caltech101(_RandomSplitDataset):
    """Caltech101 with CoOp's split (100 classes).

    Layout: ``data_root/101_ObjectCategories/<class>/*.jpg`` and
    ``data_root/split_zhou_Caltech101.json``. When creating the split, the
    folders ``BACKGROUND_Google`` and ``Faces_easy`` are ignored and
    ``airplanes``, ``Faces``, ``Leopards``, ``Motorbikes`` become
    ``airplane``, ``face``, ``leopard``, ``motorbike``.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/caltech-101'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = '101_ObjectCategories'
    SPLIT_FILE = 'split_zhou_Caltech101.json'
    IGNORED_FOLDERS = ('BACKGROUND_Google', 'Faces_easy')
    NEW_CNAMES = {
        'airplanes': 'airplane',
        'Faces': 'face',
        'Leopards': 'leopard',
        'Motorbikes': 'motorbike',
    }


@DATASETS.register_module()
class Food101(_RandomSplitDataset):
    """Food-101 with CoOp's 50/20/30 split (not the official 750/250).

    Layout: ``data_root/images/<class>/*.jpg`` and
    ``data_root/split_zhou_Food101.json``.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/food-101'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'images'
    SPLIT_FILE = 'split_zhou_Food101.json'


@DATASETS.register_module(name=['DescribableTextures', 'DTD'])
class DescribableTextures(_RandomSplitDataset):
    """DTD with CoOp's own 50/20/30 split (not the official ``labels/``).

    Layout: ``data_root/images/<class>/*.jpg`` and
    ``data_root/split_zhou_DescribableTextures.json``. Registered as
    ``'DescribableTextures'`` (the original's name) and ``'DTD'``.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/dtd'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'images'
    SPLIT_FILE = 'split_zhou_DescribableTextures.json'


@DATASETS.register_module()
class EuroSAT(_RandomSplitDataset):
    """EuroSAT (RGB) with CoOp's split and descriptive class names.

    Layout: ``data_root/2750/<class>/*.jpg`` and
    ``data_root/split_zhou_EuroSAT.json``. The released split file holds the
    names of :attr:`NEW_CNAMES` (e.g. ``'Annual Crop Land'``); they are
    applied when the split is created.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/eurosat'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = '2750'
    SPLIT_FILE = 'split_zhou_EuroSAT.json'
    NEW_CNAMES = {
        'AnnualCrop': 'Annual Crop Land',
        'Forest': 'Forest',
        'HerbaceousVegetation': 'Herbaceous Vegetation Land',
        'Highway': 'Highway or Road',
        'Industrial': 'Industrial Buildings',
        'Pasture': 'Pasture Land',
        'PermanentCrop': 'Permanent Crop Land',
        'Residential': 'Residential Buildings',
        'River': 'River',
        'SeaLake': 'Sea or Lake',
    }


@DATASETS.register_module()
class OxfordPets(CoOpDataset):
    """Oxford-IIIT Pets with CoOp's split (37 classes).

    Layout: ``data_root/images/*.jpg``, ``data_root/annotations/
    {trainval,test}.txt`` and ``data_root/split_zhou_OxfordPets.json``. When
    creating the split, the breed is the lower-cased file name without its
    trailing number (``american_bulldog``), and official trainval is split
    80/20 per class into train and val.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/oxford_pets'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'images'
    SPLIT_FILE = 'split_zhou_OxfordPets.json'

    def _read_annotations(self, name: str) -> List[DataItem]:
        path = osp.join(self.data_root, 'annotations', name)
        items = []
        for line in _read_lines(path, type(self).__name__):
            imname, label = line.split(' ')[:2]
            breed = '_'.join(imname.split('_')[:-1]).lower()
            items.append(
                DataItem(
                    osp.join(self.img_prefix, imname + '.jpg'),
                    int(label) - 1, breed))
        return items

    def create_splits(self, rng: random.Random) -> Dict[str, List[DataItem]]:
        trainval = self._read_annotations('trainval.txt')
        test = self._read_annotations('test.txt')
        train, val = split_trainval(trainval, rng)
        return dict(train=train, val=val, test=test)


@DATASETS.register_module()
class StanfordCars(CoOpDataset):
    """Stanford Cars with CoOp's split (196 classes, year first).

    Layout: ``data_root/{cars_train,cars_test}/*.jpg``,
    ``data_root/devkit/{cars_train_annos,cars_meta}.mat``,
    ``data_root/cars_test_annos_withlabels.mat`` and
    ``data_root/split_zhou_StanfordCars.json``, whose image paths are
    relative to ``data_root`` (``cars_train/00001.jpg``). When creating the
    split, the year moves to the front (``'2012 Tesla Model S Sedan'``) and
    official train is split 80/20 per class into train and val.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/stanford_cars'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = ''
    SPLIT_FILE = 'split_zhou_StanfordCars.json'

    def _read_annotations(self, image_dir: str, anno_file: str,
                          meta_file: str) -> List[DataItem]:
        name = type(self).__name__
        annos = _loadmat(anno_file, name)['annotations']
        class_names = _as_list(_loadmat(meta_file, name)['class_names'])
        items = []
        for fname, label in zip(
                _as_list(annos['fname']), _as_list(annos['class'])):
            label = int(label) - 1
            words = class_names[label].split(' ')
            words.insert(0, words.pop(-1))
            items.append(
                DataItem(
                    osp.join(self.data_root, image_dir, fname), label,
                    ' '.join(words)))
        return items

    def create_splits(self, rng: random.Random) -> Dict[str, List[DataItem]]:
        root = self.data_root
        meta = osp.join(root, 'devkit', 'cars_meta.mat')
        trainval = self._read_annotations(
            'cars_train', osp.join(root, 'devkit', 'cars_train_annos.mat'),
            meta)
        test = self._read_annotations(
            'cars_test', osp.join(root, 'cars_test_annos_withlabels.mat'),
            meta)
        train, val = split_trainval(trainval, rng)
        return dict(train=train, val=val, test=test)


@DATASETS.register_module()
class OxfordFlowers(CoOpDataset):
    """Oxford Flowers 102 with CoOp's 50/20/30 split.

    Layout: ``data_root/jpg/image_00001.jpg``, ``data_root/imagelabels.mat``,
    ``data_root/cat_to_name.json`` and
    ``data_root/split_zhou_OxfordFlowers.json``. Class names come from
    ``cat_to_name.json``.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/oxford_flowers'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'jpg'
    SPLIT_FILE = 'split_zhou_OxfordFlowers.json'

    def create_splits(self, rng: random.Random) -> Dict[str, List[DataItem]]:
        name = type(self).__name__
        labels = _as_list(
            _loadmat(osp.join(self.data_root, 'imagelabels.mat'),
                     name)['labels'])
        tracker: Dict[int, List[str]] = {}
        for i, label in enumerate(labels):
            impath = osp.join(self.img_prefix, f'image_{i + 1:05d}.jpg')
            tracker.setdefault(int(label), []).append(impath)
        cname_file = osp.join(self.data_root, 'cat_to_name.json')
        check_file(cname_file, 'class-name file', name)
        with open(cname_file, encoding='utf-8') as f:
            lab2cname = json.load(f)
        train, val, test = [], [], []
        for label, impaths in tracker.items():
            rng.shuffle(impaths)
            n_total = len(impaths)
            n_train = round(n_total * 0.5)
            n_val = round(n_total * 0.2)
            if not (n_train > 0 and n_val > 0
                    and n_total - n_train - n_val > 0):
                raise ValueError(
                    f'{name}: class {label} has {n_total} images, too few '
                    f'for a 50/20/30 split.')
            cname = lab2cname[str(label)]
            parts = (impaths[:n_train], impaths[n_train:n_train + n_val],
                     impaths[n_train + n_val:])
            for out, paths in zip((train, val, test), parts):
                out.extend(DataItem(p, label - 1, cname) for p in paths)
        return dict(train=train, val=val, test=test)


@DATASETS.register_module()
class SUN397(CoOpDataset):
    """SUN397 with CoOp's split (partition 01, train split 80/20).

    Layout: ``data_root/SUN397/<letter>/<class>/*.jpg``,
    ``data_root/{ClassName,Training_01,Testing_01}.txt`` and
    ``data_root/split_zhou_SUN397.json``. When creating the split, the class
    of ``/b/bakery/shop`` is ``'shop bakery'``: the words after the letter,
    reversed, so that e.g. ``indoor``/``outdoor`` come first.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/sun397'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'SUN397'
    SPLIT_FILE = 'split_zhou_SUN397.json'

    def _read_partition(self, cname2lab: Dict[str, int],
                        text_file: str) -> List[DataItem]:
        items = []
        path = osp.join(self.data_root, text_file)
        for line in _read_lines(path, type(self).__name__):
            imname = line[1:]  # drop the leading '/'
            folder = osp.dirname(imname)
            words = folder.split('/')[1:][::-1]
            items.append(
                DataItem(
                    osp.join(self.img_prefix, imname), cname2lab[folder],
                    ' '.join(words)))
        return items

    def create_splits(self, rng: random.Random) -> Dict[str, List[DataItem]]:
        folders = [
            line[1:] for line in _read_lines(
                osp.join(self.data_root, 'ClassName.txt'),
                type(self).__name__)
        ]
        cname2lab = {c: i for i, c in enumerate(folders)}
        trainval = self._read_partition(cname2lab, 'Training_01.txt')
        test = self._read_partition(cname2lab, 'Testing_01.txt')
        train, val = split_trainval(trainval, rng)
        return dict(train=train, val=val, test=test)


@DATASETS.register_module()
class UCF101(CoOpDataset):
    """UCF101 middle frames with CoOp's split (split 1, train split 80/20).

    Layout: ``data_root/UCF-101-midframes/<Class_Name>/<video>.jpg``,
    ``data_root/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt``
    and ``data_root/split_zhou_UCF101.json``. CamelCase actions are split
    into ``'_'``-joined words: ``ApplyEyeMakeup`` is ``Apply_Eye_Makeup``,
    which is also the frame folder.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/ucf101'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'UCF-101-midframes'
    SPLIT_FILE = 'split_zhou_UCF101.json'

    def _read_list(self, cname2lab: Dict[str, int],
                   text_file: str) -> List[DataItem]:
        items = []
        path = osp.join(self.data_root, 'ucfTrainTestlist', text_file)
        for line in _read_lines(path, type(self).__name__):
            action, filename = line.split(' ')[0].split('/')
            renamed = '_'.join(re.findall('[A-Z][^A-Z]*', action))
            filename = filename.replace('.avi', '.jpg')
            items.append(
                DataItem(
                    osp.join(self.img_prefix, renamed, filename),
                    cname2lab[action], renamed))
        return items

    def create_splits(self, rng: random.Random) -> Dict[str, List[DataItem]]:
        cname2lab = {}
        path = osp.join(self.data_root, 'ucfTrainTestlist', 'classInd.txt')
        for line in _read_lines(path, type(self).__name__):
            label, action = line.split(' ')
            cname2lab[action] = int(label) - 1
        trainval = self._read_list(cname2lab, 'trainlist01.txt')
        test = self._read_list(cname2lab, 'testlist01.txt')
        train, val = split_trainval(trainval, rng)
        return dict(train=train, val=val, test=test)


@DATASETS.register_module()
class FGVCAircraft(CoOpDataset):
    """FGVC-Aircraft (variants) with its official train/val/test split.

    Layout: the ``data/`` folder of ``fgvc-aircraft-2013b`` as
    ``data_root``: ``images/*.jpg``, ``variants.txt`` and
    ``images_variant_{train,val,test}.txt``. There is no split file. Labels
    follow the order of ``variants.txt``.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/fgvc_aircraft'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'images'

    def load_splits(self) -> Dict[str, List[DataItem]]:
        name = type(self).__name__
        variants = _read_lines(osp.join(self.data_root, 'variants.txt'), name)
        cname2lab = {c: i for i, c in enumerate(variants)}
        splits = {}
        for split in ('train', 'val', 'test'):
            path = osp.join(self.data_root, f'images_variant_{split}.txt')
            items = []
            for idx, line in enumerate(_read_lines(path, name)):
                parts = line.split(' ')
                classname = ' '.join(parts[1:])
                if classname not in cname2lab:
                    raise ValueError(
                        f'{name}: line {idx + 1} of {path!r} names the '
                        f'variant {classname!r}, which is not in '
                        f'variants.txt.')
                items.append(
                    DataItem(parts[0] + '.jpg', cname2lab[classname],
                             classname))
            splits[split] = join_items(items, self.img_prefix)
        return splits
