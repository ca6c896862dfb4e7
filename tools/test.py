# Copyright (c) mmprompt contributors. All rights reserved.
"""Evaluate a prompt checkpoint with mmengine's Runner.

The checkpoint holds only the learned prompt (``head.prompt_learner.*``);
the frozen CLIP comes from the config (``model.clip.pretrained``). A
checkpoint of the original CoOp / CoCoOp code
(``prompt_learner/model.pth.tar-N``) is read as well, directly or after
``tools/model_converters/coop_to_mmprompt.py``.

Examples:
    python tools/test.py CONFIG work_dirs/run1/epoch_10.pth
    python tools/test.py CONFIG CKPT --out preds.json
    python tools/test.py CONFIG CKPT --out metrics.json --out-item metrics
    python tools/test.py CONFIG CKPT --cfg-options \\
        test_dataloader.dataset.subsample_classes=new
    tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

# First: registers mmprompt's modules and the weights_only-safe loader.
import mmprompt  # noqa: F401  # isort: skip
import mmengine
import torch
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from mmprompt.engine import (CheckpointMismatchError, check_checkpoint_fits,
                             registry_hint)
from mmprompt.models.utils.coop_checkpoint import (convert_coop_state_dict,
                                                   is_original_checkpoint)
from mmprompt.utils import UnsafeCheckpointError, load_checkpoint_file

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
OUT_ITEMS = ('pred', 'metrics')
OUT_SUFFIXES = ('.json', '.pkl', '.pickle', '.yaml', '.yml')


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
        'original CoOp/CoCoOp code; leave it out to evaluate the model as '
        'the config builds it (zero-shot CLIP configs)')
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


class CheckpointCheckHook(Hook):
    """Convert original checkpoints and refuse ones that do not fit.

    mmengine loads checkpoints with ``strict=False``: a missing or
    misshapen ``ctx`` would leave the random initial context in place and
    give a meaningless accuracy without an error. This hook makes every
    learned tensor of the model required, with its shape, and converts a
    checkpoint of the original code in memory.
    """

    priority = 'VERY_HIGH'

    def __init__(self, path: str) -> None:
        self.path = path

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if is_original_checkpoint(checkpoint):
            print_log(
                f'{self.path} is a checkpoint of the original CoOp/CoCoOp '
                'code; converting it in memory (tools/model_converters/'
                'coop_to_mmprompt.py converts it once for all)',
                logger='current')
            converted = convert_coop_state_dict(checkpoint)
            epoch = checkpoint.get('epoch')
            # In place: the runner loads the dict it passed to the hooks.
            checkpoint.clear()
            checkpoint.update(
                state_dict=converted,
                meta=dict(epoch=epoch, converted_from=self.path))
        check_checkpoint_fits(runner.model,
                              checkpoint.get('state_dict', checkpoint),
                              self.path)


class PredictionDumper(BaseMetric):
    """Collect every prediction as plain Python data and write it to a file.

    Plain lists, numbers and strings rather than ``DataSample`` s, so that
    the file is json if wanted and never needs unpickling code to read.

    Args:
        out_file (str): ``.json``, ``.pkl``, ``.pickle``, ``.yaml`` or
            ``.yml``.
        class_names (Sequence[str], optional): The test set's classes, for
            ``pred_class``. Defaults to None.
    """

    def __init__(self,
                 out_file: str,
                 class_names: Optional[Sequence[str]] = None) -> None:
        super().__init__(collect_device='cpu')
        self.out_file = out_file
        self.class_names = list(class_names) if class_names else None

    @staticmethod
    def _plain(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            return value.item() if value.numel() == 1 and \
                value.dim() <= 1 else value.tolist()
        return value

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            record = {
                key: self._plain(sample[key])
                for key in ('sample_idx', 'img_path', 'gt_label', 'pred_label',
                            'pred_score') if key in sample
            }
            if self.class_names is not None and 'pred_label' in record:
                record['pred_class'] = self.class_names[record['pred_label']]
            self.results.append(record)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        results = sorted(results, key=lambda r: r.get('sample_idx', 0))
        mmengine.mkdir_or_exist(osp.dirname(osp.abspath(self.out_file)))
        mmengine.dump(results, self.out_file)
        print_log(
            f'{len(results)} predictions written to {self.out_file}',
            logger='current')
        return {}


class TestProgressHook(Hook):
    """Show how far the test loop is.

    On a terminal, a progress bar; LoggerHook's per-batch test lines are
    held back meanwhile (the bar shows the same count and ETA, and lines
    printed into a bar redrawn with ``\\r`` garble both). Otherwise (a log
    file, a batch job) one log line per tenth of the batches. Only the main
    process reports.
    """

    # Before LoggerHook (BELOW_NORMAL), so the bar's line is finished before
    # the metrics are logged.
    priority = 'NORMAL'

    def __init__(self) -> None:
        self._bar = None
        self._total = 0
        self._next_report = 0
        self._start = 0.0
        self._held_back = []

    def before_test_epoch(self, runner) -> None:
        if not is_main_process():
            return
        self._total = len(runner.test_dataloader)
        self._start = time.time()
        if sys.stdout.isatty():
            for hook in runner.hooks:
                if isinstance(hook, LoggerHook):
                    self._held_back.append((hook, hook.interval))
                    hook.interval = sys.maxsize
            self._bar = ProgressBar(self._total, file=sys.stdout)
        else:
            self._next_report = max(1, self._total // 10)
            print_log(f'Testing: {self._total} batches', logger='current')

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        if not is_main_process():
            return
        if self._bar is not None:
            self._bar.update()
            return
        done = batch_idx + 1
        if done >= self._next_report or done == self._total:
            elapsed = time.time() - self._start
            eta = elapsed / done * (self._total - done)
            print_log(
                f'Testing: {done}/{self._total} batches '
                f'({100 * done // max(self._total, 1)}%), elapsed '
                f'{elapsed:.0f}s, ETA {eta:.0f}s',
                logger='current')
            self._next_report = done + max(1, self._total // 10)

    def after_test_epoch(self, runner, metrics=None) -> None:
        for hook, interval in self._held_back:
            hook.interval = interval
        self._held_back = []
        if self._bar is not None:
            sys.stdout.write('\n')
            sys.stdout.flush()
            self._bar = None


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config.

    Args:
        cfg (Config): The loaded config.
        args (argparse.Namespace): The parsed command line.

    Returns:
        Config: The config the Runner is built from.
    """
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.setdefault('default_scope', 'mmprompt')
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
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
    if not osp.isfile(args.config):
        raise SystemExit(f'test.py: error: config {args.config!r}: no such '
                         'file')
    if args.checkpoint is None:
        print_log(
            'no checkpoint given: evaluating the model as the config builds '
            'it (zero-shot CLIP, or prompts at their initial values)',
            logger='current')
    elif '://' in args.checkpoint:
        # mmengine reads URLs through torch.hub with weights_only=False,
        # i.e. a downloaded file could run code when loaded.
        raise SystemExit(
            f'test.py: error: checkpoint {args.checkpoint!r} is not a local '
            "file; mmengine's URL loaders unpickle without weights_only, so "
            'download it first and pass the local path')
    if args.checkpoint is not None:
        # Read once up front: an unsafe or unreadable file is refused before
        # minutes go into building a CLIP and a dataset.
        read_checkpoint(osp.expanduser(args.checkpoint))
    cfg = merge_args(Config.fromfile(args.config), args)

    try:
        runner = Runner.from_cfg(cfg)
        if args.checkpoint is not None:
            runner.register_hook(CheckpointCheckHook(args.checkpoint))
        if not args.no_progress:
            runner.register_hook(TestProgressHook())
        if args.out is not None and args.out_item == 'pred':
            evaluator = runner.test_loop.evaluator
            evaluator.metrics.append(
                PredictionDumper(
                    args.out,
                    class_names=(evaluator.dataset_meta or {}).get('classes')))
        metrics = runner.test()
    except KeyError as err:
        hint = registry_hint(err)
        if hint is None:
            raise
        raise SystemExit(f'test.py: error: {hint}') from None
    except CheckpointMismatchError as err:
        raise SystemExit(f'test.py: error: {err}') from None
    if args.out is not None and args.out_item == 'metrics' \
            and is_main_process():
        mmengine.mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
        mmengine.dump(metrics, args.out)
        print_log(f'metrics written to {args.out}', logger='current')
    return metrics


if __name__ == '__main__':
    main()
