# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert the cache of the original Tip-Adapter (gaopengcuhk/Tip-Adapter)
to an mmprompt checkpoint of ``TipAdapter``.

The original's ``main.py`` writes into its ``cache_dir``:

* ``keys_<K>shots.pt``: the cache keys ``(D, N·K)`` (normalised, fp16 on
  CUDA), columns in the order of its few-shot set;
* ``values_<K>shots.pt``: the one-hot values ``(N·K, C)`` (fp16);
* ``best_F_<K>shots.pt``: Tip-Adapter-F's trained keys, the adapter's
  ``weight`` ``(N·K, D)`` (an ``nn.Parameter``), of the epoch it chose.

Its α and β are printed, not saved: pass them (``--alpha``, ``--beta``; by
default the config's initial 1.0, 1.0, with a warning). This writes the
mmengine checkpoint ``tools/test.py`` reads with a Tip-Adapter config:
``{'meta': {...}, 'state_dict': {'adapter.cache_keys' (N·K, D),
'adapter.cache_values', 'adapter.alpha', 'adapter.beta'}}``, in fp32 (exact
for fp16 values; ``model.adapter.precision=fp16`` computes in fp16 again).

Examples:
    python tools/model_converters/tip_adapter_to_mmprompt.py \\
        caches/oxford_pets tip_pets.pth --shots 16 --alpha 1.17 --beta 1
    python tools/model_converters/tip_adapter_to_mmprompt.py \\
        caches/oxford_pets tip_f_pets.pth --shots 16 --finetuned \\
        --alpha 1.5 --beta 5.2
"""
import argparse
import io
import os.path as osp
import sys
from typing import List, Optional

# First: registers mmprompt's modules and the weights_only-safe loader.
import mmprompt  # noqa: F401  # isort: skip
import torch
from mmengine.logging import print_log

from mmprompt.utils import (UnsafeCheckpointError, atomic_write,
                            load_checkpoint_file)

PROG = 'tip_adapter_to_mmprompt.py'
SOURCE = 'gaopengcuhk/Tip-Adapter'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Convert the cache of the original Tip-Adapter '
        '(keys_<K>shots.pt, values_<K>shots.pt, best_F_<K>shots.pt) to an '
        'mmprompt TipAdapter checkpoint.')
    parser.add_argument('cache_dir', help="the original's cache_dir")
    parser.add_argument('dst', help='the mmprompt checkpoint to write')
    parser.add_argument(
        '--shots', type=int, required=True, help='the K of the file names')
    parser.add_argument(
        '--finetuned',
        action='store_true',
        help="Tip-Adapter-F: take the keys of best_F_<K>shots.pt")
    parser.add_argument(
        '--alpha', type=float, help='the alpha the original chose (printed)')
    parser.add_argument(
        '--beta', type=float, help='the beta the original chose (printed)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite DST if it exists')
    return parser.parse_args(argv)


def _tensor(path: str, what: str) -> torch.Tensor:
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r}: no such file')
    value = load_checkpoint_file(path, map_location='cpu')
    if not isinstance(value, torch.Tensor) or value.dim() != 2:
        raise ValueError(
            f'{path!r} is not the original\'s {what} (a 2-D tensor), got '
            f'{type(value).__name__} '
            f'{tuple(getattr(value, "shape", ()))}')
    return value.detach().float()


def convert(cache_dir: str,
            dst: str,
            shots: int,
            finetuned: bool = False,
            alpha: Optional[float] = None,
            beta: Optional[float] = None,
            force: bool = False) -> dict:
    """Convert the original's cache and write it atomically to ``dst``.

    Args:
        cache_dir (str): The original's ``cache_dir``.
        dst (str): Where the mmprompt checkpoint goes.
        shots (int): The ``K`` of the file names.
        finetuned (bool): Take Tip-Adapter-F's trained keys
            (``best_F_<K>shots.pt``). Defaults to False.
        alpha (float, optional): α (the cache's weight). Defaults to None:
            1.0, with a warning.
        beta (float, optional): β (the affinity's sharpness). Defaults to
            None: 1.0, with a warning.
        force (bool): Overwrite an existing ``dst``. Defaults to False.

    Returns:
        dict: The written checkpoint.

    Raises:
        FileNotFoundError: A file of the cache is missing (named).
        FileExistsError: ``dst`` exists and ``force`` is False.
        ValueError: A file is not what the original writes, or the shapes
            disagree (both named).
    """
    if osp.exists(dst) and not force:
        raise FileExistsError(f'{dst!r} exists; pass --force to overwrite it')
    keys = _tensor(osp.join(cache_dir, f'keys_{shots}shots.pt'), 'cache keys')
    values = _tensor(
        osp.join(cache_dir, f'values_{shots}shots.pt'), 'cache values')
    keys = keys.t().contiguous()  # (D, NK) -> (NK, D)
    if finetuned:
        trained = _tensor(
            osp.join(cache_dir, f'best_F_{shots}shots.pt'),
            'Tip-Adapter-F keys')
        if trained.shape != keys.shape:
            raise ValueError(
                f'best_F_{shots}shots.pt is {tuple(trained.shape)}, the '
                f'cache keys {tuple(keys.shape)} (transposed): not the same '
                'cache')
        keys = trained.contiguous()
    if values.shape[0] != keys.shape[0]:
        raise ValueError(
            f'values_{shots}shots.pt has {values.shape[0]} entries, the keys '
            f'{keys.shape[0]}: not the same cache')
    chosen = {}
    for name, value in (('alpha', alpha), ('beta', beta)):
        if value is None:
            print_log(
                f'{PROG}: no --{name}: {name} = 1.0 (the original prints '
                'the value it chose; pass it)',
                logger='current',
                level=30)
            value = 1.0
        chosen[name] = float(value)
    state_dict = {
        'adapter.cache_keys': keys,
        'adapter.cache_values': values,
        'adapter.alpha': torch.tensor(chosen['alpha'], dtype=torch.float64),
        'adapter.beta': torch.tensor(chosen['beta'], dtype=torch.float64),
    }
    meta = dict(
        converted_from=osp.abspath(cache_dir),
        source=f"original Tip-Adapter{'-F' if finetuned else ''} cache "
        f'({SOURCE}), {shots} shots',
        alpha=chosen['alpha'],
        beta=chosen['beta'],
        mmprompt_version=mmprompt.__version__)
    checkpoint = dict(meta=meta, state_dict=state_dict)
    with io.BytesIO() as buffer:
        torch.save(checkpoint, buffer)
        atomic_write(dst, buffer.getvalue())
    print_log(
        f'{cache_dir} -> {dst}: {keys.shape[0]} cache entries of width '
        f'{keys.shape[1]}, {values.shape[1]} classes, alpha '
        f"{chosen['alpha']}, beta {chosen['beta']}",
        logger='current')
    return checkpoint


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the script."""
    args = parse_args(argv)
    try:
        convert(args.cache_dir, args.dst, args.shots, args.finetuned,
                args.alpha, args.beta, args.force)
    except (OSError, UnsafeCheckpointError, ValueError) as err:
        sys.exit(f'{PROG}: error: {err}')


if __name__ == '__main__':
    main()
