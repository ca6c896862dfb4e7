# Copyright (c) mmprompt contributors. All rights reserved.
"""Curves and timings from mmengine's json training logs.

mmengine writes one json object per logged step to
``<work_dir>/<timestamp>/vis_data/scalars.json`` (and the same lines to
``vis_data/<timestamp>.json``): training lines carry ``lr``, ``loss``,
``time``, ``epoch``, ``iter`` and ``step`` (the iteration); validation
lines the metrics (``accuracy/top1``) with ``step`` = the epoch (or the
iteration in iteration-based training). A work dir may be given instead of
a log: its newest ``scalars.json`` is read.

mmpretrain ships a similar script in its source tree only (it is not part
of the installed package, and needs seaborn).

Examples:
    python tools/analysis_tools/analyze_logs.py plot_curve \\
        work_dirs/run1/20240101_000000/vis_data/scalars.json \\
        --keys loss accuracy/top1 --out curves.png
    python tools/analysis_tools/analyze_logs.py plot_curve run1 run2 \\
        --keys loss --legend seed1 seed2 --out loss.pdf
    python tools/analysis_tools/analyze_logs.py cal_train_time \\
        work_dirs/run1
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')  # files only, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def find_log(path: str) -> str:
    """The json log of ``path``: itself, or a work dir's newest.

    Args:
        path (str): A ``.json`` log or a work dir.

    Returns:
        str: The log file.
    """
    if osp.isfile(path):
        return path
    if osp.isdir(path):
        logs = sorted(
            glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')) +
            glob.glob(osp.join(path, 'vis_data', 'scalars.json')))
        if logs:
            return logs[-1]  # timestamped folders sort by time
        raise FileNotFoundError(
            f'{path!r} holds no <timestamp>/vis_data/scalars.json; give a '
            'json log of a training run')
    raise FileNotFoundError(f'{path!r}: no such file or folder')


def load_json_log(path: str) -> Dict[str, List[dict]]:
    """Split a json log into training and validation records.

    Args:
        path (str): A json log (one object per line) or a work dir.

    Returns:
        dict: ``train`` (lines with ``lr``) and ``val`` (the others).
    """
    log = dict(train=[], val=[])
    with open(find_log(path)) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{number} is not a json line: '
                                 f'{err}') from None
            log['train' if 'lr' in record else 'val'].append(record)
    return log


def iters_per_epoch(train: List[dict]) -> Optional[int]:
    """Iterations of an epoch: the last step logged in epoch 1 (the logger
    always logs the last iteration of an epoch)."""
    steps = [r['step'] for r in train if r.get('epoch') == 1]
    later = any(r.get('epoch', 1) > 1 for r in train)
    if not steps or not later:
        # One epoch only: its last logged step ends it.
        steps = steps or [r['step'] for r in train]
    return max(steps) if steps else None


def curve(log: Dict[str, List[dict]], key: str,
          xaxis: str) -> Tuple[np.ndarray, np.ndarray, str]:
    """The points of ``key`` against epochs or iterations.

    Args:
        log (dict): :func:`load_json_log` output.
        key (str): e.g. ``'loss'``, ``'lr'``, ``'accuracy/top1'``.
        xaxis (str): ``'epoch'`` or ``'iter'``.

    Returns:
        tuple: x, y and where the key was found (``'train'``/``'val'``).
    """
    by_epoch = any('epoch' in r for r in log['train'])
    per_epoch = iters_per_epoch(log['train']) if by_epoch else None
    for phase in ('train', 'val'):
        records = [r for r in log[phase] if key in r]
        if not records:
            continue
        x = np.array([r['step'] for r in records], dtype=float)
        y = np.array([r[key] for r in records], dtype=float)
        if by_epoch and per_epoch:
            if phase == 'train' and xaxis == 'epoch':
                x = x / per_epoch
            elif phase == 'val' and xaxis == 'iter':
                x = x * per_epoch
        return x, y, phase
    available = sorted({k for p in log.values() for r in p for k in r})
    raise KeyError(f'no {key!r} in the log; it has {available}')


def plot_curve(logs: Sequence[str],
               keys: Sequence[str],
               out: str,
               legend: Optional[Sequence[str]] = None,
               xaxis: str = 'epoch',
               title: Optional[str] = None) -> str:
    """One panel per key, one line per log; saved to ``out``.

    Args:
        logs (Sequence[str]): Json logs or work dirs.
        keys (Sequence[str]): What to plot, e.g. ``['loss',
            'accuracy/top1']``.
        out (str): The figure file (``.png``, ``.pdf``, ``.svg``...).
        legend (Sequence[str], optional): One name per log. Defaults to the
            log's run folder names.
        xaxis (str): ``'epoch'`` or ``'iter'``. Defaults to 'epoch'.
        title (str, optional): Title of the figure. Defaults to None.

    Returns:
        str: ``out``.
    """
    if legend is not None and len(legend) != len(logs):
        raise ValueError(f'--legend has {len(legend)} names for '
                         f'{len(logs)} logs')
    loaded = [load_json_log(p) for p in logs]
    names = legend or [_run_name(p) for p in logs]
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(6, 2.8 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for log, name in zip(loaded, names):
            x, y, phase = curve(log, key, xaxis)
            ax.plot(x, y, marker='o' if phase == 'val' else None, label=name)
        ax.set_ylabel(key)
        ax.set_xlabel(xaxis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, bbox_inches='tight', dpi=120)
    plt.close(fig)
    return out


def _run_name(path: str) -> str:
    log = osp.abspath(find_log(path))
    # <work_dir>/<timestamp>/vis_data/scalars.json -> <work_dir> name
    parts = log.split(os.sep)
    if len(parts) >= 4 and parts[-2] == 'vis_data':
        return parts[-4]
    return osp.splitext(osp.basename(log))[0]


def train_time(path: str) -> Dict[str, float]:
    """Average seconds per training iteration and per epoch.

    Args:
        path (str): A json log or a work dir.

    Returns:
        dict: ``iter_time`` (mean of the logged ``time``, the first record
        left out as warm-up when there are several), and ``epoch_time``
        when the run is epoch-based.
    """
    train = load_json_log(path)['train']
    times = [r['time'] for r in train if 'time' in r]
    if not times:
        raise ValueError(f'{path}: no training times in the log')
    kept = times[1:] if len(times) > 1 else times
    result = dict(iter_time=float(np.mean(kept)))
    per_epoch = iters_per_epoch(train) if any('epoch' in r
                                              for r in train) else None
    if per_epoch:
        result['epoch_time'] = result['iter_time'] * per_epoch
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Curves and timings from mmengine json logs')
    sub = parser.add_subparsers(dest='command', required=True)
    plot = sub.add_parser('plot_curve', help='plot curves of some keys')
    plot.add_argument(
        'logs',
        nargs='+',
        help='json logs (vis_data/scalars.json) or '
        'work dirs')
    plot.add_argument(
        '--keys',
        nargs='+',
        default=['loss'],
        help='keys to plot, e.g. loss lr accuracy/top1 (default: loss)')
    plot.add_argument('--legend', nargs='+', help='one name per log')
    plot.add_argument(
        '--xaxis',
        choices=('epoch', 'iter'),
        default='epoch',
        help='x axis (default: epoch)')
    plot.add_argument('--title', help='figure title')
    plot.add_argument(
        '--out',
        default='curves.png',
        help='output figure (default: '
        'curves.png)')
    timing = sub.add_parser(
        'cal_train_time', help='average time per iteration and epoch')
    timing.add_argument('logs', nargs='+', help='json logs or work dirs')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        if args.command == 'plot_curve':
            print(
                plot_curve(args.logs, args.keys, args.out, args.legend,
                           args.xaxis, args.title))
        else:
            for log in args.logs:
                times = train_time(log)
                line = f'{log}: {times["iter_time"]:.4f} s/iter'
                if 'epoch_time' in times:
                    line += f', {times["epoch_time"]:.2f} s/epoch'
                print(line)
    except (FileNotFoundError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) else err
        print(f'analyze_logs.py: error: {message}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
