# Copyright (c) mmprompt contributors. All rights reserved.
"""ImageNet and its four test-only variants as CoOp reads them."""
import os
import os.path as osp
from typing import Dict, List, Mapping, Sequence

from mmprompt.registry import DATASETS
from .base_dataset import CoOpDataset
from .utils import (DataItem, check_dir, check_file, listdir_nohidden,
                    read_classnames)


def _read_class_folders(split_dir: str, folders: Sequence[str],
                        classnames: Mapping[str, str],
                        dataset: str) -> List[DataItem]:
    """Items of ``split_dir/<folder>/*``, labelled by the folder's index."""
    items = []
    for label, folder in enumerate(folders):
        if folder not in classnames:
            raise ValueError(
                f'{dataset}: the class folder {folder!r} of {split_dir!r} '
                f'is not listed in classnames.txt.')
        class_dir = osp.join(split_dir, folder)
        check_dir(class_dir, 'class folder', dataset)
        items.extend(
            DataItem(osp.join(class_dir, im), label, classnames[folder])
            for im in listdir_nohidden(class_dir))
    return items


def _subfolders(path: str, ignored: Sequence[str] = ()) -> List[str]:
    return sorted(
        entry.name for entry in os.scandir(path) if entry.is_dir()
        and not entry.name.startswith('.') and entry.name not in ignored)


class _ImageNetBase(CoOpDataset):
    """Shared reading of ``classnames.txt``."""

    def _classnames(self) -> Mapping[str, str]:
        path = osp.join(self.data_root, 'classnames.txt')
        check_file(path, 'class-name file', type(self).__name__)
        return read_classnames(path)


@DATASETS.register_module()
class ImageNet(_ImageNetBase):
    """ImageNet-1k as CoOp uses it: val is the test (and val) split.

    Layout: ``data_root/images/{train,val}/<wnid>/*.JPEG`` (val sorted into
    wnid folders) and ``data_root/classnames.txt`` with
    ``<wnid> <class name>`` per line. Labels are the indices of the sorted
    wnid folders. Few-shot selection applies to train only.

    The original listed the images of a folder in file-system order and
    cached the list; mmprompt sorts them, so ImageNet few-shot sets are
    reproducible but not those of a given original run.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/imagenet'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'images'
    SAMPLE_VAL = False

    def load_splits(self) -> Dict[str, List[DataItem]]:
        name = type(self).__name__
        classnames = self._classnames()
        splits = {}
        # Listing 1.28M training images is only worth it when train is the
        # split asked for or defines the base/new halves.
        if self.split == 'train' or self.subsample_classes != 'all':
            train_dir = osp.join(self.img_prefix, 'train')
            check_dir(train_dir, 'image folder', name)
            splits['train'] = _read_class_folders(train_dir,
                                                  _subfolders(train_dir),
                                                  classnames, name)
        if self.split != 'train':
            val_dir = osp.join(self.img_prefix, 'val')
            check_dir(val_dir, 'image folder', name)
            splits['test'] = _read_class_folders(val_dir, _subfolders(val_dir),
                                                 classnames, name)
            splits['val'] = splits['test']
        return splits


@DATASETS.register_module()
class ImageNetV2(_ImageNetBase):
    """ImageNetV2 (matched frequency), test only, 1000 classes.

    Layout: ``data_root/imagenetv2-matched-frequency-format-val/<i>/*.jpeg``
    with folders ``0``..``999`` and ``data_root/classnames.txt``, which must
    list the wnids in sorted order: folder ``i`` is the ``i``-th line.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/imagenetv2'``.
        split (str): Any split gives the same images. Defaults to
            ``'test'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'imagenetv2-matched-frequency-format-val'
    TEST_ONLY = True

    def __init__(self, data_root: str, split: str = 'test', **kwargs):
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_splits(self) -> Dict[str, List[DataItem]]:
        name = type(self).__name__
        classnames = self._classnames()
        wnids = list(classnames.keys())
        items = []
        for label, wnid in enumerate(wnids):
            class_dir = osp.join(self.img_prefix, str(label))
            check_dir(class_dir, 'class folder', name)
            items.extend(
                DataItem(osp.join(class_dir, im), label, classnames[wnid])
                for im in listdir_nohidden(class_dir))
        return dict(train=items, val=items, test=items)


class _WnidFolderVariant(_ImageNetBase):
    """A test-only variant with one folder per wnid, labelled in order."""
    TEST_ONLY = True
    IGNORED: tuple = ()

    def __init__(self, data_root: str, split: str = 'test', **kwargs):
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_splits(self) -> Dict[str, List[DataItem]]:
        items = _read_class_folders(self.img_prefix,
                                    _subfolders(self.img_prefix, self.IGNORED),
                                    self._classnames(),
                                    type(self).__name__)
        return dict(train=items, val=items, test=items)


@DATASETS.register_module()
class ImageNetSketch(_WnidFolderVariant):
    """ImageNet-Sketch, test only, 1000 classes.

    Layout: ``data_root/images/<wnid>/*`` and ``data_root/classnames.txt``.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/imagenet-sketch'``.
        split (str): Any split gives the same images. Defaults to
            ``'test'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'images'


@DATASETS.register_module()
class ImageNetA(_WnidFolderVariant):
    """ImageNet-A, test only, evaluated 200-way.

    Layout: ``data_root/imagenet-a/<wnid>/*.jpg`` (its ``README.txt`` is
    ignored) and ``data_root/classnames.txt`` (the 1000-line ImageNet file).
    The 200 wnid folders, sorted, are labels 0..199 and the classes are only
    their names, so the classifier is 200-way as in the original.

    Args:
        data_root (str): The dataset folder, e.g.
            ``'data/imagenet-adversarial'``.
        split (str): Any split gives the same images. Defaults to
            ``'test'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'imagenet-a'
    IGNORED = ('README.txt', )


@DATASETS.register_module()
class ImageNetR(_WnidFolderVariant):
    """ImageNet-R, test only, evaluated 200-way.

    Layout: ``data_root/imagenet-r/<wnid>/*.jpg`` (its ``README.txt`` is
    ignored) and ``data_root/classnames.txt`` (the 1000-line ImageNet file).

    Args:
        data_root (str): The dataset folder, e.g.
            ``'data/imagenet-rendition'``.
        split (str): Any split gives the same images. Defaults to
            ``'test'``.
        **kwargs: Arguments of :class:`CoOpDataset`.
    """
    IMAGE_DIR = 'imagenet-r'
    IGNORED = ('README.txt', )
