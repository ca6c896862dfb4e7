# Copyright (c) mmprompt contributors. All rights reserved.
"""Split files, few-shot sampling and base/new subsampling of CoOp.

These functions reproduce the data protocol of the original CoOp code
(few-shot selection, base/new halves, the 50/20/30 and 80/20 random splits)
so that mmprompt trains and tests on exactly the same images. They work on
:class:`DataItem` tuples and know nothing about images or pipelines, which
keeps them usable by the dataset classes and by ``tools/dataset_converters``.
"""
import json
import logging
import math
import os
import os.path as osp
import random
import uuid
from collections import OrderedDict
from typing import (Dict, Iterable, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple)

from mmengine.logging import print_log

DOCS_HINT = 'See docs/datasets.md for how to prepare it.'
SPLIT_NAMES = ('train', 'val', 'test')
SUBSAMPLE_CHOICES = ('all', 'base', 'new')


class DataItem(NamedTuple):
    """One image of a split.

    Attributes:
        impath (str): Image path: relative to the image folder while a split
            file is read or written, joined with it inside the datasets.
        label (int): 0-based class index.
        classname (str): Class name as the original stores it (``'_'`` kept).
    """
    impath: str
    label: int
    classname: str


def listdir_nohidden(path: str) -> List[str]:
    """Sorted names in ``path`` that do not start with a dot.

    The original lists folders with ``os.listdir`` and only sorts the class
    folders; image names came in file-system order. Sorting them makes the
    result independent of the file system (see docs/datasets.md).

    Args:
        path (str): A folder.

    Returns:
        list[str]: The sorted entry names.
    """
    return sorted(
        name for name in os.listdir(path) if not name.startswith('.'))


def check_dir(path: str, what: str, dataset: str) -> None:
    """Raise a helpful ``FileNotFoundError`` if ``path`` is not a folder.

    Args:
        path (str): The folder that must exist.
        what (str): What the folder is, e.g. ``'data_root'``.
        dataset (str): The dataset name, for the message.
    """
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{dataset}: {what} {path!r} does not exist or is not a folder. '
            f'{DOCS_HINT}')


def check_file(path: str, what: str, dataset: str) -> None:
    """Raise a helpful ``FileNotFoundError`` if ``path`` is not a file.

    Args:
        path (str): The file that must exist.
        what (str): What the file is, e.g. ``'split file'``.
        dataset (str): The dataset name, for the message.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{dataset}: {what} {path!r} does not exist. {DOCS_HINT}')


def read_split_file(path: str) -> Dict[str, List[DataItem]]:
    """Read a split file in the original's format.

    The file is ``{"train": [[impath, label, classname], ...], "val": [...],
    "test": [...]}`` with image paths relative to the image folder.

    Args:
        path (str): The json file.

    Returns:
        dict[str, list[DataItem]]: The items of each split present in the
        file, image paths left relative.

    Raises:
        ValueError: If the file is not valid json, misses a split, has a
            malformed entry (the entry index is named) or gives one label two
            different class names.
    """
    try:
        with open(path, encoding='utf-8') as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'Split file {path!r} is not valid json: {e}') from e
    if not isinstance(content, dict):
        raise ValueError(
            f'Split file {path!r} must hold a json object with the keys '
            f'{list(SPLIT_NAMES)}, got a {type(content).__name__}.')
    missing = [name for name in SPLIT_NAMES if name not in content]
    if missing:
        raise ValueError(f'Split file {path!r} misses the split(s) {missing}; '
                         f'it must have the keys {list(SPLIT_NAMES)}.')
    splits = {}
    label_names: Dict[int, Tuple[str, str, int]] = {}
    for name in SPLIT_NAMES:
        entries = content[name]
        if not isinstance(entries, list):
            raise ValueError(f'Split file {path!r}: "{name}" must be a list '
                             f'of [impath, label, classname] entries.')
        items = []
        for idx, entry in enumerate(entries):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 3
                    and isinstance(entry[0], str) and isinstance(
                        entry[1], int) and not isinstance(entry[1], bool)
                    and entry[1] >= 0 and isinstance(entry[2], str)):
                raise ValueError(
                    f'Split file {path!r}: entry {idx} of "{name}" is '
                    f'{entry!r}, expected [impath (str), label (int >= 0), '
                    f'classname (str)].')
            impath, label, classname = entry
            seen = label_names.setdefault(label, (classname, name, idx))
            if seen[0] != classname:
                raise ValueError(
                    f'Split file {path!r}: label {label} is called '
                    f'{seen[0]!r} in entry {seen[2]} of "{seen[1]}" but '
                    f'{classname!r} in entry {idx} of "{name}". A label '
                    f'must have one class name.')
            items.append(DataItem(impath, label, classname))
        splits[name] = items
    return splits


def write_split_file(splits: Mapping[str, Sequence[DataItem]],
                     path: str) -> None:
    """Write a split file in the original's format, atomically.

    The file gets the mode a plain ``open()`` gives (``0666`` less the
    umask), so that a shared data folder stays readable to others.

    Args:
        splits (Mapping[str, Sequence[DataItem]]): Items of ``'train'``,
            ``'val'`` and ``'test'`` with image paths relative to the image
            folder.
        path (str): The json file to write.

    Raises:
        IsADirectoryError: ``path`` is a folder.

    Examples:
        >>> import os.path as osp, tempfile
        >>> path = osp.join(tempfile.mkdtemp(), 'split.json')
        >>> write_split_file({'train': [DataItem('a/0.png', 0, 'a')],
        ...                   'val': [], 'test': []}, path)
        >>> read_split_file(path)['train']
        [DataItem(impath='a/0.png', label=0, classname='a')]
    """
    content = {
        name: [[it.impath, int(it.label), it.classname] for it in splits[name]]
        for name in SPLIT_NAMES
    }
    if osp.isdir(path):
        raise IsADirectoryError(
            f'split file {path!r} is a folder; give the path of the json '
            f'file to write, e.g. {osp.join(path, "split.json")!r}')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # Several processes (one per GPU) may create the same file at once: each
    # writes the same content to a file of its own and renames it in place.
    # The file is created with mode 0666 less the umask, as open() would
    # (mkstemp's 0600 locks out colleagues sharing the data folder).
    while True:
        tmp = osp.join(folder, f'.{osp.basename(path)}.{uuid.uuid4().hex}.tmp')
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - a uuid4 collision
            continue
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(content, f, indent=4, separators=(',', ': '))
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def relative_items(items: Iterable[DataItem], prefix: str) -> List[DataItem]:
    """Make image paths relative to ``prefix`` (the original's ``save_split``).

    Args:
        items (Iterable[DataItem]): Items with paths under ``prefix``.
        prefix (str): The image folder.

    Returns:
        list[DataItem]: The items with relative paths.
    """
    return [it._replace(impath=osp.relpath(it.impath, prefix)) for it in items]


def join_items(items: Iterable[DataItem], prefix: str) -> List[DataItem]:
    """Join the relative image paths of ``items`` with ``prefix``.

    Args:
        items (Iterable[DataItem]): Items with relative image paths.
        prefix (str): The image folder.

    Returns:
        list[DataItem]: The items with joined paths.
    """
    return [it._replace(impath=osp.join(prefix, it.impath)) for it in items]


def group_by_label(items: Iterable[DataItem]) -> Dict[int, List[DataItem]]:
    """Group items by label, labels in order of first appearance.

    Args:
        items (Iterable[DataItem]): The items.

    Returns:
        dict[int, list[DataItem]]: Items of each label in their order.
    """
    groups: Dict[int, List[DataItem]] = OrderedDict()
    for item in items:
        groups.setdefault(item.label, []).append(item)
    return groups


def sample_few_shot(items: Sequence[DataItem], num_shots: int,
                    rng: random.Random) -> List[DataItem]:
    """Draw ``num_shots`` items per class as the original does.

    Classes are visited in order of first appearance and each draws
    ``rng.sample(items_of_class, num_shots)``; a class with fewer items keeps
    all of them, in their order (the original's ``repeat=False``).

    Args:
        items (Sequence[DataItem]): The full split.
        num_shots (int): Images per class, at least 1.
        rng (random.Random): The generator, shared by consecutive calls
            (train then val) exactly as the original's global ``random``.

    Returns:
        list[DataItem]: The selected items, class after class.
    """
    selected = []
    for label, group in group_by_label(items).items():
        if len(group) >= num_shots:
            selected.extend(rng.sample(group, num_shots))
        else:
            print_log(
                f'Class {group[0].classname!r} (label {label}) has only '
                f'{len(group)} images, fewer than num_shots={num_shots}; '
                f'all of them are used.',
                logger='current',
                level=logging.WARNING)
            selected.extend(group)
    return selected


def few_shot_splits(splits: Mapping[str, Sequence[DataItem]],
                    num_shots: int,
                    seed: int,
                    sample_val: bool = True) -> Dict[str, List[DataItem]]:
    """Apply the original's few-shot selection to ``train`` (and ``val``).

    A fresh ``random.Random(seed)``, the same stream as the original's
    ``random.seed(seed)``, draws ``num_shots`` per class from train, then
    ``min(num_shots, 4)`` per class from val with the same generator.

    Args:
        splits (Mapping[str, Sequence[DataItem]]): Must hold ``'train'``, and
            ``'val'`` if ``sample_val``. Other splits pass through.
        num_shots (int): Images per class, at least 1.
        seed (int): The seed of the selection.
        sample_val (bool): Whether val is sampled too (False for ImageNet,
            whose val split is its test split). Defaults to True.

    Returns:
        dict[str, list[DataItem]]: The splits with train (and val) replaced.
    """
    out = {name: list(items) for name, items in splits.items()}
    rng = random.Random(seed)
    out['train'] = sample_few_shot(splits['train'], num_shots, rng)
    if sample_val:
        out['val'] = sample_few_shot(splits['val'], min(num_shots, 4), rng)
    return out


def subsample_classes(splits: Mapping[str, Sequence[DataItem]],
                      subsample: str = 'all',
                      reference: str = 'train') -> Dict[str, List[DataItem]]:
    """Keep the base or the new half of the classes and relabel them.

    The labels of the ``reference`` split (the few-shot train split) are
    sorted; the first ``ceil(n / 2)`` are base, the rest new. Items of the
    kept labels are relabelled ``0..`` in sorted order in every split, and
    items of other labels are dropped. Class names travel with the items.

    Args:
        splits (Mapping[str, Sequence[DataItem]]): Splits to subsample; must
            contain ``reference``.
        subsample (str): ``'all'``, ``'base'`` or ``'new'``. Defaults to
            ``'all'``.
        reference (str): The split whose labels define the halves. Defaults
            to ``'train'``.

    Returns:
        dict[str, list[DataItem]]: The subsampled splits.
    """
    if subsample not in SUBSAMPLE_CHOICES:
        raise ValueError(f'subsample_classes must be one of '
                         f'{list(SUBSAMPLE_CHOICES)}, got {subsample!r}')
    if subsample == 'all':
        return {name: list(items) for name, items in splits.items()}
    labels = sorted({item.label for item in splits[reference]})
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if subsample == 'base' else labels[m:]
    relabel = {old: new for new, old in enumerate(selected)}
    return {
        name: [
            item._replace(label=relabel[item.label]) for item in items
            if item.label in relabel
        ]
        for name, items in splits.items()
    }


def class_names_of(items: Iterable[DataItem], source: str) -> List[str]:
    """The class names of labels ``0..n-1`` of ``items``.

    Args:
        items (Iterable[DataItem]): Items whose labels must be ``0..n-1``.
        source (str): Where the items come from, for error messages.

    Returns:
        list[str]: ``names[label]`` is the class name of ``label``.

    Raises:
        ValueError: If a label has two names or labels are not contiguous.
    """
    mapping: Dict[int, str] = {}
    for item in items:
        name = mapping.setdefault(item.label, item.classname)
        if name != item.classname:
            raise ValueError(
                f'{source}: label {item.label} has two class names, '
                f'{name!r} and {item.classname!r}.')
    if not mapping:
        raise ValueError(f'{source}: no images were found.')
    missing = sorted(set(range(max(mapping) + 1)) - set(mapping))
    if missing:
        raise ValueError(
            f'{source}: labels must be 0..{max(mapping)} without gaps, but '
            f'no image has the label(s) {missing[:10]}. Relabel the classes '
            f'of the split file contiguously from 0.')
    return [mapping[label] for label in range(len(mapping))]


def split_trainval(trainval: Sequence[DataItem],
                   rng: random.Random,
                   p_val: float = 0.2
                   ) -> Tuple[List[DataItem], List[DataItem]]:
    """Split an official trainval set into train and val per class.

    The original's ``OxfordPets.split_trainval``: per label (in order of first
    appearance) the item indices are shuffled, the first
    ``round(n * p_val)`` go to val and the rest to train, each list keeping
    the shuffled order.

    Args:
        trainval (Sequence[DataItem]): The items to split.
        rng (random.Random): The generator (the original's global
            ``random``).
        p_val (float): Fraction of each class that goes to val. Defaults to
            0.2.

    Returns:
        tuple[list[DataItem], list[DataItem]]: train and val.
    """
    groups: Dict[int, List[int]] = OrderedDict()
    for idx, item in enumerate(trainval):
        groups.setdefault(item.label, []).append(idx)
    train, val = [], []
    for label, idxs in groups.items():
        n_val = round(len(idxs) * p_val)
        if n_val <= 0:
            raise ValueError(
                f'Class {trainval[idxs[0]].classname!r} has {len(idxs)} '
                f'trainval images, too few to hold out round({len(idxs)} * '
                f'{p_val}) >= 1 for val.')
        rng.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def read_and_split_data(
    image_dir: str,
    rng: random.Random,
    p_trn: float = 0.5,
    p_val: float = 0.2,
    ignored: Sequence[str] = (),
    new_cnames: Optional[Mapping[str, str]] = None,
    extensions: Optional[Sequence[str]] = None
) -> Tuple[List[DataItem], List[DataItem], List[DataItem]]:
    """Split a folder-per-class tree at random, per class.

    The original's ``DTD.read_and_split_data``: class folders are sorted
    (after removing ``ignored``) and their index is the label; each class's
    images are shuffled and the first ``round(n * p_trn)`` go to train, the
    next ``round(n * p_val)`` to val and the rest to test (Python's ``round``,
    which rounds halves to even). ``new_cnames`` renames folders.

    Args:
        image_dir (str): The folder holding one folder per class.
        rng (random.Random): The generator (the original's global
            ``random``).
        p_trn (float): Train fraction. Defaults to 0.5.
        p_val (float): Val fraction. Defaults to 0.2.
        ignored (Sequence[str]): Folders that are not classes.
        new_cnames (Mapping[str, str], optional): Folder name to class name.
        extensions (Sequence[str], optional): Keep only files with these
            (lower-case) extensions, e.g. ``('.jpg', '.png')``. Defaults to
            None: every non-hidden file, as the original.

    Returns:
        tuple: train, val and test items, paths joined with ``image_dir``.
    """
    categories = [
        c for c in listdir_nohidden(image_dir)
        if c not in ignored and osp.isdir(osp.join(image_dir, c))
    ]
    train, val, test = [], [], []
    for label, category in enumerate(categories):
        category_dir = osp.join(image_dir, category)
        images = [
            osp.join(category_dir, im) for im in listdir_nohidden(category_dir)
            if extensions is None or osp.splitext(im)[1].lower() in extensions
        ]
        rng.shuffle(images)
        n_total = len(images)
        n_train = round(n_total * p_trn)
        n_val = round(n_total * p_val)
        n_test = n_total - n_train - n_val
        if not (n_train > 0 and n_val > 0 and n_test > 0):
            raise ValueError(
                f'Class folder {category_dir!r} has {n_total} images, too '
                f'few for a {p_trn:g}/{p_val:g}/{1 - p_trn - p_val:g} split '
                f'with at least one image in each part.')
        classname = category
        if new_cnames is not None and category in new_cnames:
            classname = new_cnames[category]

        def collate(paths: Sequence[str]) -> List[DataItem]:
            return [DataItem(p, label, classname) for p in paths]

        train.extend(collate(images[:n_train]))
        val.extend(collate(images[n_train:n_train + n_val]))
        test.extend(collate(images[n_train + n_val:]))
    return train, val, test


def read_classnames(path: str) -> 'OrderedDict[str, str]':
    """Read ImageNet's ``classnames.txt``: ``<wnid> <class name>`` per line.

    Args:
        path (str): The text file.

    Returns:
        OrderedDict[str, str]: wnid to class name, in file order.
    """
    classnames: 'OrderedDict[str, str]' = OrderedDict()
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            parts = line.strip().split(' ')
            if not parts[0]:
                continue
            if len(parts) < 2:
                raise ValueError(
                    f'{path!r} line {lineno}: expected "<wnid> <class '
                    f'name>", got {line.strip()!r}.')
            classnames[parts[0]] = ' '.join(parts[1:])
    return classnames
