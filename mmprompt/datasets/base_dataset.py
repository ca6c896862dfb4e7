# Copyright (c) mmprompt contributors. All rights reserved.
"""The dataset base of CoOp's protocol and the split-file dataset."""
import logging
import os.path as osp
import random
from typing import Dict, List, Optional, Sequence

from mmengine.logging import print_log
from mmpretrain.datasets import BaseDataset
from PIL import Image

from mmprompt.registry import DATASETS, TRANSFORMS
from .samplers import seeded_generators
from .transforms import ImageReadError
from .utils import (DOCS_HINT, SPLIT_NAMES, SUBSAMPLE_CHOICES, DataItem,
                    check_dir, check_file, class_names_of, few_shot_splits,
                    join_items, read_split_file, relative_items,
                    subsample_classes, write_split_file)

CHECK_IMAGES_CHOICES = ('none', 'first', 'all')


class CoOpDataset(BaseDataset):
    """Base class of the datasets of CoOp's few-shot and base/new protocol.

    A subclass says where the images and the split file are
    (``IMAGE_DIR``, ``SPLIT_FILE``) and how to read the splits
    (:meth:`load_splits`); this class then applies the protocol of the
    original CoOp code exactly:

    1. few-shot selection (``num_shots >= 1``): a ``random.Random(seed)``
       draws ``num_shots`` images per class from train, then
       ``min(num_shots, 4)`` per class from val with the same generator.
       Every split computes the same selection, so ``split='val'`` sees the
       val images that a ``split='train'`` instance's generator would draw;
    2. base/new (``subsample_classes``): the sorted labels of the few-shot
       train split, first ``ceil(n / 2)`` are base, the others new, relabelled
       from 0 in every split.

    ``metainfo['classes']`` holds the class names of the selected labels in
    label order, spelled as the original stores them (the prompt learner
    replaces ``'_'`` by spaces). Each item is ``dict(img_path, gt_label)``.

    Args:
        data_root (str): The dataset folder, e.g. ``'data/oxford_pets'``.
        split (str): ``'train'``, ``'val'`` or ``'test'``. Defaults to
            ``'train'``.
        num_shots (int): Images per class in train (val gets
            ``min(num_shots, 4)``), or -1 for all images. Defaults to -1.
        seed (int): Seed of the few-shot selection (and of creating a missing
            split file). Defaults to 1.
        subsample_classes (str): ``'all'``, ``'base'`` or ``'new'``.
            Defaults to ``'all'``.
        pipeline (Sequence): Transforms (dicts are built with mmprompt's
            TRANSFORMS registry, which falls back to mmpretrain's).
            Defaults to ().
        check_images (str): Which listed images to check for existence when
            loading: ``'none'``, ``'first'`` (the first image of every class
            of the split, cheap) or ``'all'``. Defaults to ``'first'``.
        **kwargs: Other arguments of :class:`mmpretrain.datasets.BaseDataset`
            (``indices``, ``lazy_init``, ``serialize_data``, ...).
    """

    #: The split file, relative to ``data_root``; None if there is none.
    SPLIT_FILE: Optional[str] = None
    #: The folder the image paths are relative to, relative to ``data_root``.
    IMAGE_DIR: str = ''
    #: Whether few-shot selection also applies to val (not for ImageNet).
    SAMPLE_VAL: bool = True
    #: Whether the dataset is test-only (the ImageNet variants).
    TEST_ONLY: bool = False
    #: The pipeline draws from the seed of each sample's index
    #: (mmprompt's ``DefaultSampler``), see :meth:`prepare_data`.
    SEEDS_SAMPLES: bool = True

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_shots: int = -1,
                 seed: int = 1,
                 subsample_classes: str = 'all',
                 pipeline: Sequence = (),
                 check_images: str = 'first',
                 **kwargs) -> None:
        name = type(self).__name__
        if split not in SPLIT_NAMES:
            raise ValueError(f'{name}: split must be one of '
                             f'{list(SPLIT_NAMES)}, got {split!r}')
        if subsample_classes not in SUBSAMPLE_CHOICES:
            raise ValueError(f'{name}: subsample_classes must be one of '
                             f'{list(SUBSAMPLE_CHOICES)}, got '
                             f'{subsample_classes!r}')
        if (not isinstance(num_shots, int) or isinstance(num_shots, bool)
                or not (num_shots == -1 or num_shots >= 1)):
            raise ValueError(f'{name}: num_shots must be -1 (all images) or '
                             f'an int >= 1, got {num_shots!r}')
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f'{name}: seed must be an int, got {seed!r}')
        if check_images not in CHECK_IMAGES_CHOICES:
            raise ValueError(f'{name}: check_images must be one of '
                             f'{list(CHECK_IMAGES_CHOICES)}, got '
                             f'{check_images!r}')
        if self.TEST_ONLY and (num_shots != -1 or subsample_classes != 'all'):
            raise ValueError(
                f'{name} is a test-only dataset: num_shots must be -1 and '
                f'subsample_classes \'all\', got num_shots={num_shots!r}, '
                f'subsample_classes={subsample_classes!r}')
        if data_root is None or str(data_root) == '':
            raise ValueError(f'{name}: data_root must be the dataset folder, '
                             f'got {data_root!r}. {DOCS_HINT}')
        self.split = split
        self.num_shots = num_shots
        self.seed = seed
        self.subsample_classes = subsample_classes
        self.check_images = check_images
        # Built here so that mmprompt's own transforms resolve without a
        # default scope; mmpretrain's resolve through the parent registry.
        pipeline = [
            TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline
        ]
        kwargs.setdefault('test_mode', split != 'train')
        kwargs.setdefault('ann_file', self._default_split_file())
        kwargs.setdefault('data_prefix', self.IMAGE_DIR)
        super().__init__(data_root=str(data_root), pipeline=pipeline, **kwargs)

    def _default_split_file(self) -> str:
        return self.SPLIT_FILE or ''

    # ------------------------------------------------------------------
    # What subclasses implement
    # ------------------------------------------------------------------
    def load_splits(self) -> Dict[str, List[DataItem]]:
        """Read the full (not few-shot) splits, image paths joined.

        The default reads ``self.ann_file`` (the split file) relative to the
        image folder, creating it with :meth:`create_splits` first when it is
        missing and the subclass can.

        Returns:
            dict[str, list[DataItem]]: At least ``self.split``, and
            ``'train'`` unless it is not needed (see ImageNet).
        """
        name = type(self).__name__
        if osp.isfile(self.ann_file):
            splits = read_split_file(self.ann_file)
        else:
            rng = random.Random(self.seed)
            try:
                created = self.create_splits(rng)
            except FileNotFoundError as e:
                raise FileNotFoundError(
                    f'{name}: the split file {self.ann_file!r} does not '
                    f'exist (download it, see docs/datasets.md), and it '
                    f'cannot be created from the official files: {e}') from e
            if created is None:
                check_file(self.ann_file, 'split file', name)
            splits = {
                k: relative_items(v, self.img_prefix)
                for k, v in created.items()
            }
            try:
                write_split_file(splits, self.ann_file)
                print_log(
                    f'{name}: {self.ann_file!r} was missing and has been '
                    f'created from the official files with seed '
                    f'{self.seed}. Random parts of it cannot match the '
                    f'released split; download split_zhou_*.json to '
                    f'reproduce published numbers ({DOCS_HINT})',
                    logger='current',
                    level=logging.WARNING)
            except OSError as e:
                print_log(
                    f'{name}: could not write the created split file '
                    f'{self.ann_file!r} ({e}); using it in memory only.',
                    logger='current',
                    level=logging.WARNING)
        return {k: join_items(v, self.img_prefix) for k, v in splits.items()}

    def create_splits(self, rng: random.Random
                      ) -> Optional[Dict[str, List[DataItem]]]:
        """Create the splits from the official files, as the original does.

        Args:
            rng (random.Random): The generator for random splits.

        Returns:
            dict[str, list[DataItem]] | None: train, val and test with joined
            image paths, or None if the dataset needs its split file.
        """
        return None

    # ------------------------------------------------------------------
    # The protocol
    # ------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """Load the split, apply few-shot and base/new, set the classes.

        Returns:
            list[dict]: ``dict(img_path=str, gt_label=int)`` per image.
        """
        name = type(self).__name__
        check_dir(self.data_root, 'data_root', name)
        check_dir(self.img_prefix, 'image folder', name)
        splits = self.load_splits()
        if self.num_shots >= 1 and 'train' in splits:
            splits = few_shot_splits(
                splits, self.num_shots, self.seed, sample_val=self.SAMPLE_VAL)
        if self.subsample_classes != 'all':
            splits = subsample_classes(splits, self.subsample_classes)
        items = splits[self.split]
        source = f'{name} ({self.ann_file or self.img_prefix})'
        # Like the original, class names come from the train split when it
        # is loaded, so every split of a dataset has the same class list.
        names = class_names_of(splits.get('train', items), source)
        for idx, item in enumerate(items):
            if item.label >= len(names):
                raise ValueError(
                    f'{source}: image {item.impath!r} of split '
                    f'{self.split!r} has label {item.label}, but train has '
                    f'only {len(names)} classes.')
        self._metainfo['classes'] = tuple(names)
        self._check_image_files(items)
        return [dict(img_path=it.impath, gt_label=it.label) for it in items]

    def _check_image_files(self, items: Sequence[DataItem]) -> None:
        if self.check_images == 'none':
            return
        if self.check_images == 'first':
            firsts: Dict[int, DataItem] = {}
            for item in items:
                firsts.setdefault(item.label, item)
            items = list(firsts.values())
        missing = [it.impath for it in items if not osp.isfile(it.impath)]
        if missing:
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} listed image(s) of '
                f'split {self.split!r} do not exist, e.g. {missing[:3]}. '
                f'Check data_root and the image folder. {DOCS_HINT}')

    def prepare_data(self, idx: int):
        """Load and transform one item, naming the file when it fails.

        An index of mmprompt's ``DefaultSampler`` (a
        :class:`~mmprompt.datasets.samplers.SampleIndex`) carries the seed
        of its sample: the pipeline's random transforms then draw from
        generators seeded with it (``seeded_generators``), so that a sample
        gets the same augmentation on any number of processes and workers.

        mmcv's pillow decoder reports an unreadable image without its path
        (``cannot identify image file <_io.BytesIO ...>``), and PIL's
        ``DecompressionBombError`` names neither the file nor the limit.
        """
        seed = getattr(idx, 'seed', None)
        idx = int(idx)  # a plain int in the data info (sample_idx)
        try:
            if seed is None:
                return super().prepare_data(idx)
            with seeded_generators(seed):
                return super().prepare_data(idx)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            path = self.get_data_info(idx).get('img_path')
            hint = ''
            if isinstance(err, Image.DecompressionBombError):
                hint = ('. The limit is 2 x PIL.Image.MAX_IMAGE_PIXELS; for '
                        'a file you trust, shrink it or raise the limit in '
                        'a module of the config\'s custom_imports')
            where = (f'item {idx} of the {self.split} split of '
                     f'{type(self).__name__}')
            if isinstance(err, ImageReadError):  # names the file already
                raise OSError(f'{err} ({where})') from err
            raise OSError(f'cannot read image {path!r} ({where}): '
                          f'{type(err).__name__}: {err}{hint}') from err

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        body = super().extra_repr()
        body.append(f'Split: \t{self.split}')
        body.append(f'Shots: \t{self.num_shots} (seed {self.seed})')
        body.append(f'Classes: \t{self.subsample_classes}')
        return body


@DATASETS.register_module()
class SplitJsonDataset(CoOpDataset):
    """Your own dataset in CoOp's split-file format.

    The split file is ``{"train": [[impath, label, classname], ...],
    "val": [...], "test": [...]}`` with image paths relative to
    ``image_dir`` and labels ``0..n-1``;
    ``tools/dataset_converters/make_split.py`` writes one from a
    folder-per-class tree. Few-shot and base/new work as for the built-in
    datasets.

    Args:
        data_root (str): The dataset folder.
        split_file (str): The split file, relative to ``data_root`` unless
            absolute. Defaults to ``'split.json'``.
        image_dir (str): The folder the image paths are relative to,
            relative to ``data_root`` unless absolute. Defaults to ``''``.
        **kwargs: Arguments of :class:`CoOpDataset` (``split``,
            ``num_shots``, ``seed``, ``subsample_classes``, ``pipeline``,
            ...).

    Examples:
        >>> from mmprompt.registry import DATASETS
        >>> cfg = dict(type='SplitJsonDataset', data_root='data/my_data',
        ...            split_file='split.json', image_dir='images',
        ...            split='train', num_shots=16, seed=1,
        ...            lazy_init=True)
        >>> DATASETS.build(cfg).split
        'train'
    """

    def __init__(self,
                 data_root: str,
                 split_file: str = 'split.json',
                 image_dir: str = '',
                 **kwargs) -> None:
        if not split_file:
            raise ValueError('SplitJsonDataset: split_file must name the '
                             'split json file, got an empty value.')
        super().__init__(
            data_root=data_root,
            ann_file=split_file,
            data_prefix=image_dir,
            **kwargs)
