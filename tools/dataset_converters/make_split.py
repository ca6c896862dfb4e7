# Copyright (c) mmprompt contributors. All rights reserved.
"""Write a CoOp split file from a folder-per-class image tree.

Each class (sorted folder names, the folder index is the label) is shuffled
and split round(n * p_train) / round(n * p_val) / rest, as the original
``DTD.read_and_split_data`` does for Caltech101, DTD, Food101 and EuroSAT.
Image paths in the file are relative to ROOT. For example::

    python tools/dataset_converters/make_split.py data/mine/images \
        --out data/mine/split.json

is used with ``dict(type='SplitJsonDataset', data_root='data/mine',
split_file='split.json', image_dir='images', ...)``.

A random split made here cannot equal the released ``split_zhou_*.json``
files of the original (different file order and generator history); use
those for the benchmark datasets (docs/datasets.md).
"""
import argparse
import os.path as osp
import random
import sys
from collections import Counter

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                    '.tiff', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a CoOp split json ({"train", "val", "test"}: '
        '[[impath, label, classname], ...]) from ROOT/<class>/<image>.')
    parser.add_argument('root', help='folder holding one folder per class')
    parser.add_argument(
        '--out',
        required=True,
        help='the split json to write, e.g. data/mine/split.json')
    parser.add_argument(
        '--p-train',
        type=float,
        default=0.5,
        help='fraction of each class for train (default: 0.5)')
    parser.add_argument(
        '--p-val',
        type=float,
        default=0.2,
        help='fraction of each class for val (default: 0.2); the rest is '
        'test')
    parser.add_argument(
        '--seed',
        type=int,
        default=1,
        help='seed of the shuffle, a Python random.Random (default: 1)')
    parser.add_argument(
        '--ignore',
        nargs='*',
        default=[],
        metavar='FOLDER',
        help='class folders to leave out, e.g. BACKGROUND_Google')
    parser.add_argument(
        '--rename',
        nargs='*',
        default=[],
        metavar='FOLDER=NAME',
        help='class names that differ from the folder name, e.g. '
        'airplanes=airplane')
    parser.add_argument(
        '--all-files',
        action='store_true',
        help='take every non-hidden file as an image, as the original '
        f'(default: only {", ".join(IMAGE_EXTENSIONS)})')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing --out')
    args = parser.parse_args(argv)
    if not (0 < args.p_train < 1 and 0 < args.p_val < 1
            and args.p_train + args.p_val < 1):
        parser.error('--p-train and --p-val must be in (0, 1) and leave a '
                     f'test part, got {args.p_train} and {args.p_val}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmprompt.datasets.utils import (listdir_nohidden, read_and_split_data,
                                         relative_items, write_split_file)
    if not osp.isdir(args.root):
        print(f'error: {args.root!r} is not a folder', file=sys.stderr)
        return 1
    if osp.isdir(args.out):
        print(
            f'error: --out {args.out!r} is a folder; give the json file to '
            f'write, e.g. {osp.join(args.out, "split.json")!r}',
            file=sys.stderr)
        return 1
    if osp.exists(args.out) and not args.force:
        print(
            f'error: {args.out!r} exists; pass --force to overwrite it',
            file=sys.stderr)
        return 1
    renames = {}
    for pair in args.rename:
        if '=' not in pair:
            print(
                f'error: --rename takes FOLDER=NAME, got {pair!r}',
                file=sys.stderr)
            return 1
        folder, name = pair.split('=', 1)
        renames[folder] = name
    folders = [
        name for name in listdir_nohidden(args.root)
        if osp.isdir(osp.join(args.root, name))
    ]
    # A misspelt folder would silently keep its folder name or class.
    for option, names in (('--ignore', args.ignore), ('--rename', renames)):
        for name in names:
            if name not in folders:
                print(
                    f'error: {option}: no class folder {name!r} in '
                    f'{args.root!r}; its class folders are '
                    f'{", ".join(map(repr, folders)) or "none"}',
                    file=sys.stderr)
                return 1
    classes = [name for name in folders if name not in args.ignore]
    if not classes:
        ignored = (f' (--ignore leaves out all of {folders})'
                   if folders else '')
        print(
            f'error: {args.root!r} holds no class folders{ignored}; it must '
            'hold one folder of images per class, ROOT/<class>/<image>',
            file=sys.stderr)
        return 1
    try:
        train, val, test = read_and_split_data(
            args.root,
            random.Random(args.seed),
            p_trn=args.p_train,
            p_val=args.p_val,
            ignored=args.ignore,
            new_cnames=renames,
            extensions=None if args.all_files else IMAGE_EXTENSIONS)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    splits = {
        name: relative_items(items, args.root)
        for name, items in (('train', train), ('val', val), ('test', test))
    }
    try:
        write_split_file(splits, args.out)
    except OSError as e:
        print(f'error: cannot write {args.out!r}: {e}', file=sys.stderr)
        return 1
    classes = Counter(item.classname for item in train)
    print(f'wrote {args.out}: {len(classes)} classes, train {len(train)}, '
          f'val {len(val)}, test {len(test)} images')
    return 0


if __name__ == '__main__':
    sys.exit(main())
