# Copyright (c) mmprompt contributors. All rights reserved.
"""Print what a prepared dataset holds and report missing images.

Either a config (its train/val/test dataloaders' datasets are checked) or a
dataset type with its arguments::

    python tools/dataset_converters/check_dataset.py OxfordPets \\
        --data-root data/oxford_pets --num-shots 16 --seed 1
    python tools/dataset_converters/check_dataset.py CONFIG.py

For each split it prints the number of images and classes and the images
per class, then checks that every listed image exists. The exit status is 1
if the dataset cannot be built or an image is missing.
"""
import argparse
import copy
import os.path as osp
import sys
from collections import Counter


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Print the images per split and class of a prepared '
        'dataset and report missing image files.')
    parser.add_argument(
        'config_or_type',
        help='a config file (.py), or a dataset type such as OxfordPets or '
        'SplitJsonDataset')
    parser.add_argument(
        '--data-root', help='the dataset folder (with a dataset type)')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['train', 'val', 'test'],
        choices=['train', 'val', 'test'],
        help='splits to check with a dataset type (default: all three)')
    parser.add_argument(
        '--num-shots',
        type=int,
        default=-1,
        help='images per class, -1 for all (default: -1)')
    parser.add_argument(
        '--seed', type=int, default=1, help='few-shot seed (default: 1)')
    parser.add_argument(
        '--subsample-classes',
        default='all',
        choices=['all', 'base', 'new'],
        help='class half (default: all)')
    parser.add_argument('--split-file', help='split file of SplitJsonDataset')
    parser.add_argument('--image-dir', help='image folder of SplitJsonDataset')
    parser.add_argument(
        '--max-classes',
        type=int,
        default=20,
        help='classes listed per split; 0 lists all (default: 20)')
    return parser.parse_args(argv)


def dataset_cfgs(args):
    """(name, dataset config) pairs to check."""
    if args.config_or_type.endswith('.py'):
        from mmengine.config import Config
        if not osp.isfile(args.config_or_type):
            raise SystemExit(f'check_dataset.py: error: config '
                             f'{args.config_or_type!r}: no such file')
        cfg = Config.fromfile(args.config_or_type)
        out = []
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            loader = cfg.get(key)
            if not loader or 'dataset' not in loader:
                continue
            ds = copy.deepcopy(loader['dataset'])
            # unwrap dataset wrappers (RepeatDataset, ...)
            while 'dataset' in ds and 'data_root' not in ds:
                ds = ds['dataset']
            out.append((key.replace('_dataloader', ''), ds))
        return out, cfg.get('default_scope', 'mmprompt')
    if args.data_root is None:
        raise SystemExit('check_dataset.py: error: --data-root is required '
                         'with a dataset type')
    out = []
    for split in args.splits:
        ds = dict(
            type=args.config_or_type,
            data_root=args.data_root,
            split=split,
            num_shots=args.num_shots,
            seed=args.seed,
            subsample_classes=args.subsample_classes)
        if args.split_file:
            ds['split_file'] = args.split_file
        if args.image_dir:
            ds['image_dir'] = args.image_dir
        out.append((split, ds))
    return out, 'mmprompt'


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    import mmprompt  # noqa: F401
    from mmprompt.datasets import CoOpDataset
    from mmprompt.registry import DATASETS, registry_hint
    cfgs, scope = dataset_cfgs(args)
    init_default_scope(scope)
    status = 0
    for name, cfg in cfgs:
        cfg = dict(cfg)
        cfg['pipeline'] = []
        cfg['serialize_data'] = False
        dataset_cls = DATASETS.get(cfg.get('type', ''))
        if dataset_cls is None and isinstance(cfg.get('type'), str):
            # the same mistake in every split: one error, with close names
            try:
                DATASETS.build(cfg)
            except KeyError as err:
                hint = registry_hint(err)
                if hint is not None:
                    raise SystemExit(
                        f'check_dataset.py: error: {hint}') from None
        if isinstance(dataset_cls, type) and issubclass(
                dataset_cls, CoOpDataset):
            # every image is checked below, with a full report
            cfg['check_images'] = 'none'
        try:
            dataset = DATASETS.build(cfg)
        except (OSError, ValueError, KeyError) as e:
            print(f'[{name}] cannot build {cfg.get("type")}: {e}')
            status = 1
            continue
        classes = dataset.metainfo.get('classes') or ()
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        counts = Counter(int(info['gt_label']) for info in infos)
        print(f'[{name}] {type(dataset).__name__}: {len(dataset)} images, '
              f'{len(classes)} classes')
        shown = sorted(counts) if args.max_classes == 0 else sorted(
            counts)[:args.max_classes]
        for label in shown:
            cname = classes[label] if label < len(classes) else '?'
            print(f'    {label:>5d}  {cname:<40s} {counts[label]:>7d}')
        if len(shown) < len(counts):
            print(f'    ... {len(counts) - len(shown)} more classes '
                  f'(--max-classes 0 lists all)')
        missing = [
            info['img_path'] for info in infos
            if not osp.isfile(info['img_path'])
        ]
        if missing:
            status = 1
            print(f'[{name}] {len(missing)} missing image(s):')
            for path in missing[:20]:
                print(f'    {path}')
            if len(missing) > 20:
                print(f'    ... and {len(missing) - 20} more')
        else:
            print(f'[{name}] all {len(infos)} images exist')
    return status


if __name__ == '__main__':
    sys.exit(main())
