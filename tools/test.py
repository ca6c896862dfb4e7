# Copyright (c) mmprompt contributors. All rights reserved.
"""Evaluate a prompt checkpoint with mmengine's Runner.

The checkpoint holds only the learned prompt (``head.prompt_learner.*``);
the frozen CLIP comes from the config (``model.clip.pretrained``). A
checkpoint of the original CoOp / CoCoOp code
(``prompt_learner/model.pth.tar-N``) is read as well, directly or after
``tools/model_converters/coop_to_mmprompt.py``.

A checkpoint that records another CLIP (arch or weights) or prompt learner
(type or options) than the config builds is refused, naming each
difference; ``--ignore-checkpoint-meta`` tests it all the same. A model
that learns a prompt is not tested without a checkpoint unless
``--allow-untrained``; zero-shot CLIP needs none.

Examples:
    python tools/test.py CONFIG work_dirs/run1/epoch_10.pth
    python tools/test.py CONFIG CKPT --out preds.json
    python tools/test.py CONFIG CKPT --out metrics.json --out-item metrics
    python tools/test.py CONFIG CKPT --cfg-options \\
        test_dataloader.dataset.subsample_classes=new
    tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import logging
import os
import os.path as osp
import tempfile
from typing import Any, Dict, Optional

# First: registers mmprompt's modules and the weights_only-safe loader.
import mmprompt  # noqa: F401  # isort: skip
import mmengine
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmprompt.engine import (CheckpointFitHook, TestProgressHook,
                             teardown_distributed)
from mmprompt.evaluation import PredictionDumper
from mmprompt.evaluation.prediction_dumper import DUMP_SUFFIXES
from mmprompt.registry import registry_hint
from mmprompt.utils import (CheckpointMismatchError, UnsafeCheckpointError,
                            load_checkpoint_file, stale_copies)

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
OUT_ITEMS = ('pred', 'metrics')
OUT_SUFFIXES = DUMP_SUFFIXES


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line of ``tools/test.py``."""
    parser = argparse.ArgumentParser(
        description='Evaluate a prompt learner checkpoint on the test set '
        'of a config.')
    parser.add_argument(
        'config',
        help='the config file the model and the '
        'test data come from')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='a checkpoint written by tools/train.py, converted by '
        'tools/model_converters/coop_to_mmprompt.py, or written by the '
        'original CoOp/CoCoOp code; defaults to the config\'s load_from. '
        'Only a model that learns nothing (zero-shot CLIP) is tested '
        'without one, unless --allow-untrained')
    parser.add_argument(
        '--work-dir',
        help='where the test log goes; defaults to the config\'s work_dir, '
        'else ./work_dirs/<config name>')
    parser.add_argument(
        '--out',
        help='dump the predictions (or the metrics, see --out-item) to this '
        f'file; the suffix picks the format: {", ".join(OUT_SUFFIXES)}')
    parser.add_argument(
        '--out-item',
        choices=OUT_ITEMS,
        default='pred',
        help='what --out holds: the prediction of every image (img_path, '
        'gt_label, pred_label, pred_class, pred_score) or the metrics')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. '
        'test_dataloader.dataset.split=val; lists as key="[a,b]" or key=a,b '
        '(quotes are needed, spaces are not allowed)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='run the test loop under autocast (fp16 on GPUs, bf16 on CPU)')
    parser.add_argument(
        '--allow-untrained',
        action='store_true',
        help='test a model that learns a prompt without a checkpoint, i.e. '
        'its initial prompt (random context or the ctx_init words), e.g. '
        'as a baseline; refused otherwise')
    parser.add_argument(
        '--ignore-checkpoint-meta',
        action='store_true',
        help='test a checkpoint although it records another CLIP (arch or '
        'weights) or prompt learner (type or options) than the config '
        'builds; the differences are logged as a warning. Refused '
        'otherwise: the shapes fit, the results would be wrong')
    parser.add_argument(
        '--no-progress',
        action='store_true',
        help='do not show the progress bar (or progress lines when the '
        'output is not a terminal)')
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='how the processes were started (set by dist_test.sh and '
        'slurm_test.sh)')
    parser.add_argument(
        '--local_rank',
        '--local-rank',
        type=int,
        default=0,
        help='rank of this process on its node (set by the launcher)')
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.out is not None and not args.out.endswith(OUT_SUFFIXES):
        parser.error(f'--out {args.out!r}: the file name must end with one '
                     f'of {", ".join(OUT_SUFFIXES)}')
    return args


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config file name without extension>``."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def read_checkpoint(path: str) -> Dict[str, Any]:
    """Read a checkpoint with the weights-only loader, refusing clearly.

    Args:
        path (str): The checkpoint file.

    Returns:
        dict: The checkpoint.

    Raises:
        SystemExit: The file does not exist, cannot be read safely or holds
            no state dict.
    """
    if not osp.isfile(path):
        raise SystemExit(f'test.py: error: checkpoint {path!r}: no such file')
    try:
        checkpoint = load_checkpoint_file(path, map_location='cpu')
    except UnsafeCheckpointError as err:
        raise SystemExit(f'test.py: error: {err}') from None
    except Exception as err:  # truncated, corrupt, not a torch file
        message = str(err)
        if path not in message:
            message = (f'cannot read checkpoint {path!r} '
                       f'({type(err).__name__}: {message})')
        raise SystemExit(f'test.py: error: {message}') from None
    if not isinstance(checkpoint, dict):
        raise SystemExit(
            f'test.py: error: checkpoint {path!r} holds a '
            f'{type(checkpoint).__name__}, not a dict with a state_dict')
    return checkpoint


def check_checkpoint(path: str) -> None:
    """Refuse a URL, or a file that is missing or does not read as a
    checkpoint (:func:`read_checkpoint`)."""
    if '://' in path:
        # mmengine reads URLs through torch.hub with weights_only=False,
        # i.e. a downloaded file could run code when loaded.
        raise SystemExit(
            f'test.py: error: checkpoint {path!r} is not a local file; '
            "mmengine's URL loaders unpickle without weights_only, so "
            'download it first and pass the local path')
    read_checkpoint(osp.expanduser(path))


def check_untrained(model: nn.Module, args: argparse.Namespace) -> None:
    """Refuse to test without a checkpoint a model that learns something,
    unless ``--allow-untrained``.

    Args:
        model (nn.Module): The model the config builds (or its wrapper).
        args (argparse.Namespace): The command line.

    Raises:
        SystemExit: The model has trainable parameters (a prompt learner),
            no checkpoint was given and ``--allow-untrained`` was not.
    """
    if is_model_wrapper(model):
        model = model.module
    learned = [n for n, p in model.named_parameters() if p.requires_grad]
    if not learned:
        print_log(
            'no checkpoint given: testing the model as the config builds '
            'it, which learns nothing (zero-shot)',
            logger='current')
        return
    shown = ', '.join(learned[:4]) + (', ...' if len(learned) > 4 else '')
    if not args.allow_untrained:
        raise SystemExit(
            f'test.py: error: no checkpoint given, and the model of '
            f'{args.config!r} learns {shown}: it would be tested with its '
            'initial prompt (random context, or the ctx_init words), not a '
            'trained one. Give the checkpoint written by tools/train.py '
            '(test.py CONFIG CHECKPOINT), or --allow-untrained to test the '
            'initial prompt (e.g. as a baseline).')
    print_log(
        f'no checkpoint given: testing the initial, untrained values of '
        f'{shown}, as --allow-untrained asks',
        logger='current',
        level=logging.WARNING)


def check_out_writable(out: str) -> None:
    """Refuse an ``--out`` that cannot be written, before anything runs.

    Nothing is created or changed: an existing file is opened for
    appending and closed, a new one is tried as a hidden temporary file in
    the nearest existing folder above it.

    Args:
        out (str): The ``--out`` path.

    Raises:
        SystemExit: ``out`` is a folder, lies under a file, or its folder
            cannot be written (read-only, no permission).
    """
    head = f'test.py: error: --out {out!r}'
    path = osp.abspath(osp.expanduser(out))
    if osp.isdir(path):
        raise SystemExit(f'{head} is a folder; give the file to write, e.g. '
                         f'{osp.join(out, "preds.json")!r}')
    folder = osp.dirname(path)
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        raise SystemExit(f'{head}: {folder!r} is not a folder; give a path '
                         'in a folder')
    try:
        if osp.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        else:
            with tempfile.TemporaryFile(dir=folder, prefix='.mmprompt-'):
                pass
    except OSError as err:
        raise SystemExit(
            f'{head} cannot be written ({err.strerror or err} in '
            f'{folder!r}); give a path in a writable folder. Nothing was '
            'run.') from None


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config.

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): The parsed command line.

    Returns:
        Config: The config the Runner is built from.
    """
    if args.cfg_options is not None:
        before = cfg.to_dict()
        cfg.merge_from_dict(args.cfg_options)
        # e.g. data_root=..., which the config copied into its datasets
        # when it was read.
        for warning in stale_copies(before, cfg, args.cfg_options):
            print_log(warning, logger='current', level=logging.WARNING)
    cfg.launcher = args.launcher
    cfg.setdefault('default_scope', 'mmprompt')
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    if args.checkpoint is not None:
        cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if cfg.get('test_dataloader') is None:
        raise SystemExit(
            f'test.py: error: config {args.config!r} has no '
            'test_dataloader; add one (and test_evaluator, test_cfg)')
    return cfg


def main(argv=None) -> Optional[dict]:
    """Entry point of ``tools/test.py``.

    Returns:
        dict | None: The metrics.
    """
    args = parse_args(argv)
    if args.out is not None:
        # Before minutes of testing, not after.
        check_out_writable(args.out)
    if not osp.isfile(args.config):
        raise SystemExit(f'test.py: error: config {args.config!r}: no such '
                         'file')
    if args.checkpoint is not None:
        # Read once up front: an unsafe or unreadable file is refused before
        # minutes go into building a CLIP and a dataset.
        check_checkpoint(args.checkpoint)
    cfg = merge_args(Config.fromfile(args.config), args)
    checkpoint = cfg.get('load_from')
    if checkpoint and args.checkpoint is None:
        print_log(
            f'no CHECKPOINT argument: testing the config\'s load_from '
            f'{checkpoint!r}',
            logger='current')
        check_checkpoint(str(checkpoint))

    finished = False
    try:
        runner = Runner.from_cfg(cfg)
        if checkpoint:
            runner.register_hook(
                CheckpointFitHook(
                    str(checkpoint), ignore_meta=args.ignore_checkpoint_meta))
        else:
            check_untrained(runner.model, args)
        if not args.no_progress:
            runner.register_hook(TestProgressHook())
        if args.out is not None and args.out_item == 'pred':
            evaluator = runner.test_loop.evaluator
            evaluator.metrics.append(
                PredictionDumper(
                    args.out,
                    class_names=(evaluator.dataset_meta or {}).get('classes')))
        metrics = runner.test()
        finished = True
    except KeyError as err:
        hint = registry_hint(err)
        if hint is None:
            raise
        raise SystemExit(f'test.py: error: {hint}') from None
    except CheckpointMismatchError as err:
        raise SystemExit(f'test.py: error: {err}') from None
    finally:
        # As tools/train.py: the model holds the process group of a
        # distributed test; release it and tear the group down before the
        # interpreter exits (dist_test.sh).
        runner = None  # noqa: F841
        teardown_distributed(wait=finished)
    if args.out is not None and args.out_item == 'metrics' \
            and is_main_process():
        mmengine.mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
        mmengine.dump(metrics, args.out)
        print_log(f'metrics written to {args.out}', logger='current')
    return metrics


if __name__ == '__main__':
    main()
