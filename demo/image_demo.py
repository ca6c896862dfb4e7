# Copyright (c) mmprompt contributors. All rights reserved.
"""Classify images with a learned prompt and any class names.

Examples:
    python demo/image_demo.py cat.jpg dog.png \\
        --config configs/cocoop_vit-b16.py \\
        --checkpoint work_dirs/cocoop_vit-b16/epoch_10.pth \\
        --classes cat,dog,sea_lion --topk 2
    python demo/image_demo.py images/*.jpg --config CONFIG \\
        --checkpoint CKPT --classes-file classnames.txt --out preds.json

Without ``--checkpoint`` the model is used as the config builds it
(zero-shot CLIP with a ZeroShotHead config, the initial prompt otherwise).
Without ``--classes`` / ``--classes-file``, the classes are those of a
class-specific-context checkpoint or of the config's test set.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line of ``demo/image_demo.py``."""
    parser = argparse.ArgumentParser(
        description='Classify images with a CLIP and a learned prompt over '
        'any list of class names.')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument(
        '--config', required=True, help='the config the model comes from')
    parser.add_argument(
        '--checkpoint',
        help='a checkpoint of tools/train.py (or of the original CoOp / '
        'CoCoOp code); leave it out for the model as the config builds it')
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--classes',
        help='comma-separated class names, e.g. cat,dog,sea_lion '
        '(_ reads as a space)')
    group.add_argument(
        '--classes-file', help='a text file with one class name per line')
    parser.add_argument(
        '--topk', type=int, default=5, help='classes to list per image')
    parser.add_argument(
        '--batch-size', type=int, default=8, help='images per forward pass')
    parser.add_argument(
        '--device', default='cpu', help='e.g. cpu, cuda, cuda:1')
    parser.add_argument(
        '--out', help='also write the results to this .json file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. '
        'model.clip.pretrained=/data/clip/ViT-B-16.pt')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    return args


def read_class_names(args: argparse.Namespace) -> Optional[List[str]]:
    """The class names given on the command line, if any.

    Args:
        args (argparse.Namespace): The parsed command line.

    Returns:
        list[str] | None: The names in order, or None if none were given.
    """
    if args.classes is not None:
        names = [n.strip() for n in args.classes.split(',') if n.strip()]
    elif args.classes_file is not None:
        if not osp.isfile(args.classes_file):
            raise SystemExit(f'image_demo.py: error: --classes-file '
                             f'{args.classes_file!r}: no such file')
        with open(args.classes_file, encoding='utf-8') as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        return None
    if not names:
        raise SystemExit('image_demo.py: error: no class names given')
    return names


def main(argv=None) -> list:
    """Entry point of ``demo/image_demo.py``.

    Returns:
        list[dict]: The result of every image.
    """
    args = parse_args(argv)
    missing = [p for p in args.images if not osp.isfile(p)]
    if missing:
        raise SystemExit(f'image_demo.py: error: no such image file(s): '
                         f'{missing}')
    from mmprompt.apis import PromptInferencer
    inferencer = PromptInferencer(
        args.config,
        args.checkpoint,
        class_names=read_class_names(args),
        device=args.device,
        cfg_options=args.cfg_options)
    try:
        results = inferencer(
            args.images, topk=args.topk, batch_size=args.batch_size)
    except (ValueError, OSError) as err:
        # a corrupt image is named by mmprompt's LoadImageFromFile
        raise SystemExit(f'image_demo.py: error: {err}') from None
    for path, result in zip(args.images, results):
        ranked = ', '.join(f'{name} {score:.3f}'
                           for name, score in result['topk'])
        print(f'{path}: {result["pred_class"]} '
              f'({result["pred_score"]:.3f})  [{ranked}]')
    if args.out:
        import mmengine
        mmengine.dump(
            [dict(img_path=p, **r) for p, r in zip(args.images, results)],
            args.out)
        print(f'results written to {args.out}', file=sys.stderr)
    return results


if __name__ == '__main__':
    main()
