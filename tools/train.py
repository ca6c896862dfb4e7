# Copyright (c) mmprompt contributors. All rights reserved.
"""Train a prompt learner with mmengine's Runner.

Examples:
    python tools/train.py configs/coop_vit-b16.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --amp
    python tools/train.py CONFIG --resume             # the last checkpoint
    python tools/train.py CONFIG --resume work_dirs/run1/epoch_5.pth
    tools/dist_train.sh CONFIG 8                      # 8 GPUs, torchrun
    torchrun --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch

A run that does not resume refuses a work dir that already holds
checkpoints (they would be overwritten): pass --resume, another --work-dir,
or move them away. A checkpoint to resume or start from that records
another CLIP or prompt learner than the config builds is refused
(``--ignore-checkpoint-meta`` loads it all the same); every checkpoint
saved records what the model is. Without a GPU, ``--launcher pytorch``
trains on CPUs with gloo. docs/reliability.md says what survives a crash.
"""
import argparse
import errno
import logging
import os
import os.path as osp

# Registers mmprompt's models, datasets, hooks and metrics and makes
# mmengine's checkpoints loadable with weights_only=True, before any config
# is read or any checkpoint is loaded.
import mmprompt  # noqa: F401  # isort: skip
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmprompt.engine import (AMP_OPTIM_WRAPPERS, CheckpointFitHook,
                             setup_cpu_distributed, teardown_distributed)
from mmprompt.registry import registry_hint
from mmprompt.utils import (POINTER, CheckpointMismatchError,
                            CheckpointWriteError, CorruptCheckpointError,
                            UnsafeCheckpointError, existing_checkpoints,
                            load_checkpoint_file, read_pointer, repoint,
                            stale_copies)

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line of ``tools/train.py``."""
    parser = argparse.ArgumentParser(
        description='Train a prompt learner (CoOp, CoCoOp) on a frozen CLIP.')
    parser.add_argument('config', help='the config file of the run')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go; defaults to the config\'s '
        'work_dir, else ./work_dirs/<config name>')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume training: from CHECKPOINT if given, otherwise from the '
        'last checkpoint in the work dir')
    parser.add_argument(
        '--ignore-checkpoint-meta',
        action='store_true',
        help='resume or start from a checkpoint (--resume, load_from) '
        'although it records another CLIP (arch or weights) or prompt '
        'learner (type or options) than the config builds; the differences '
        'are logged as a warning. Refused otherwise')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='train with automatic mixed precision (AmpOptimWrapper, or '
        'ProGradAmpOptimWrapper for ProGradOptimWrapper; dynamic loss '
        'scale); needs a GPU')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate on the val set during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the total batch size relative to '
        'the config\'s auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. '
        'train_cfg.max_epochs=5 optim_wrapper.optimizer.lr=0.001; '
        'lists as key="[a,b]" or key=a,b, nested as key="[(a,b),(c,d)]" '
        '(quotes are needed, spaces are not allowed)')
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='how the processes were started (set by dist_train.sh and '
        'slurm_train.sh)')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank (older); torchrun sets LOCAL_RANK instead.
    parser.add_argument(
        '--local_rank',
        '--local-rank',
        type=int,
        default=0,
        help='rank of this process on its node (set by the launcher)')
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config file name without extension>``."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def _amp_device_available() -> bool:
    from mmengine.device import (is_cuda_available, is_mlu_available,
                                 is_musa_available, is_npu_available)
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


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

    # command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)

    if args.amp:
        if not _amp_device_available():
            raise SystemExit(
                'train.py: error: --amp trains in mixed precision, which '
                "mmengine's AmpOptimWrapper supports on CUDA, NPU, MLU and "
                'MUSA devices only, and none is available here; train '
                'without --amp')
        optim_wrapper = cfg.optim_wrapper
        kind = optim_wrapper.get('type', 'OptimWrapper')
        if kind in AMP_OPTIM_WRAPPERS.values():
            print_log(
                f'the config already trains with {kind}; --amp changes '
                'nothing',
                logger='current',
                level=logging.WARNING)
        else:
            # ProGradOptimWrapper's mixed-precision twin keeps its update.
            optim_wrapper.type = AMP_OPTIM_WRAPPERS.get(
                kind, 'AmpOptimWrapper')
            optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        # Runner: resume=True without load_from finds the last checkpoint.
        cfg.resume = True
        cfg.load_from = None
        last = osp.join(cfg.work_dir, POINTER)
        if not existing_checkpoints(cfg.work_dir):
            print_log(
                f'--resume: no checkpoint to resume from in {cfg.work_dir!r} '
                f'({last!r} does not exist); training starts from scratch',
                logger='current',
                level=logging.WARNING)
    elif args.resume is not None:
        if '://' in args.resume:
            # mmengine reads URLs through torch.hub with weights_only=False.
            raise SystemExit(
                f'train.py: error: --resume {args.resume!r} is not a local '
                "file; mmengine's URL loaders unpickle without weights_only, "
                'so download it first and pass the local path')
        if not osp.isfile(osp.expanduser(args.resume)):
            raise SystemExit(
                f'train.py: error: --resume {args.resume!r}: no such file; '
                'give a checkpoint written by tools/train.py, or --resume '
                'alone for the last checkpoint in the work dir')
        cfg.resume = True
        cfg.load_from = args.resume

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.auto_scale_lr:
        auto_scale_lr = cfg.get('auto_scale_lr') or {}
        if 'base_batch_size' not in auto_scale_lr:
            raise SystemExit(
                'train.py: error: --auto-scale-lr needs the batch size the '
                'learning rate was set for; add e.g. '
                '`auto_scale_lr = dict(base_batch_size=32)` to the config '
                'or pass --cfg-options auto_scale_lr.base_batch_size=32')
        cfg.auto_scale_lr = dict(auto_scale_lr, enable=True)
    return cfg


def check_work_dir(cfg: Config) -> None:
    """Refuse to start a new run over the checkpoints of another.

    A run that does not resume would write ``epoch_1.pth`` ... and
    ``last_checkpoint`` over those of the run already in the work dir.

    Args:
        cfg (Config): The merged config.

    Raises:
        SystemExit: ``cfg.work_dir`` holds checkpoints and ``cfg.resume``
            is not set.
    """
    if cfg.get('resume'):
        return
    found = existing_checkpoints(cfg.work_dir)
    if found:
        shown = ', '.join(found[:5]) + (', ...' if len(found) > 5 else '')
        raise SystemExit(
            f'train.py: error: work dir {cfg.work_dir!r} already holds the '
            f'checkpoints of a run ({shown}); a new run would overwrite '
            'them. Pass --resume to continue that run, --work-dir for a new '
            'folder, or move them away.')


def check_checkpoint_readable(cfg: Config) -> None:
    """Read ``load_from`` (``--resume FILE`` or the config's) once, before
    minutes go into building a CLIP and a dataset.

    Args:
        cfg (Config): The merged config.

    Raises:
        SystemExit: The file does not exist, is not a checkpoint (a text
            file, truncated, corrupt) or could run code when loaded.
    """
    path = cfg.get('load_from')
    if not path or '://' in str(path):
        return
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise SystemExit(
            f'train.py: error: load_from {path!r}: no such file; give a '
            'checkpoint written by tools/train.py')
    try:
        checkpoint = load_checkpoint_file(path, map_location='cpu')
    except (CorruptCheckpointError, UnsafeCheckpointError) as err:
        raise SystemExit(f'train.py: error: {err}') from None
    except OSError as err:
        raise SystemExit(f'train.py: error: cannot read checkpoint {path!r} '
                         f'({err.strerror or err})') from None
    if not isinstance(checkpoint, dict):
        raise SystemExit(
            f'train.py: error: checkpoint {path!r} holds a '
            f'{type(checkpoint).__name__}, not a dict with a state_dict')


def warn_unsafe_checkpointing(cfg: Config) -> None:
    """Say when the config's checkpoints are not written atomically."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    kind = hook.get('type') if isinstance(hook, dict) else type(hook).__name__
    if kind not in (None, 'SafeCheckpointHook', 'mmprompt.SafeCheckpointHook'):
        print_log(
            f'default_hooks.checkpoint is {kind!r}: a kill while it writes '
            'can leave a half-written checkpoint; SafeCheckpointHook (the '
            'default of configs/_base_/default_runtime.py) writes '
            'atomically and resumes bit-identically',
            logger='current',
            level=logging.WARNING)


def main(argv=None) -> None:
    """Entry point of ``tools/train.py``."""
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise SystemExit(f'train.py: error: config {args.config!r}: no such '
                         'file')
    cfg = merge_args(Config.fromfile(args.config), args)
    check_work_dir(cfg)
    if cfg.get('resume') and not cfg.get('load_from'):
        # A copied or moved work dir: mmengine's auto-resume reads the
        # absolute path in last_checkpoint, which names the old folder.
        repoint(cfg.work_dir)
    check_checkpoint_readable(cfg)
    warn_unsafe_checkpointing(cfg)
    setup_cpu_distributed(cfg)
    finished = False
    try:
        runner = Runner.from_cfg(cfg)
        # mmengine loads with strict=False and only warns on a misshapen
        # tensor: a checkpoint of another arch or n_ctx is refused instead
        # (also one of equal shapes that records another CLIP or prompt
        # learner), and one of the original code is converted. It also
        # records what the model is in every checkpoint saved.
        runner.register_hook(
            CheckpointFitHook(ignore_meta=args.ignore_checkpoint_meta))
        runner.train()
        finished = True
    except KeyError as err:
        hint = registry_hint(err)
        if hint is None:
            raise
        raise SystemExit(f'train.py: error: {hint}') from None
    except (CheckpointMismatchError, CorruptCheckpointError,
            UnsafeCheckpointError) as err:
        raise SystemExit(f'train.py: error: {err}') from None
    except CheckpointWriteError as err:
        # e.g. a full disk: mmengine's OSError would name no file.
        raise SystemExit(
            f'train.py: error: {err.strerror}. {_intact(cfg.work_dir)}'
        ) from None
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Written by a hook other than SafeCheckpointHook: no file named.
        raise SystemExit(
            f'train.py: error: {err.strerror or err} while the run wrote '
            f'to disk (the work dir is {cfg.work_dir!r}). '
            f'{_intact(cfg.work_dir)}') from None
    finally:
        # Left to the interpreter's exit, gloo/nccl could abort a finished
        # run ('terminate called without an active exception', exit 1): the
        # DDP model holds the process group, so it is released first.
        runner = None  # noqa: F841
        teardown_distributed(wait=finished)


def _intact(work_dir: str) -> str:
    """What survives a failed checkpoint write, and how to go on."""
    last = read_pointer(work_dir)
    if last is not None and osp.isfile(last):
        return (f'The last checkpoint written ({last!r}) is intact: make '
                'room, then continue the run with --resume.')
    return ('No checkpoint of this run was written yet: make room and start '
            'it again.')


if __name__ == '__main__':
    main()
