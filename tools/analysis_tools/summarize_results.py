# Copyright (c) mmprompt contributors. All rights reserved.
"""Average the results of a sweep over seeds, as the original
``parse_test_res.py`` does.

Reads every ``.../<dataset>/<run>/seed<S>/metrics.json`` under WORK_DIR
(written by ``tools/run_sweep.py`` or ``tools/test.py --out metrics.json
--out-item metrics``); a seed folder without one is read from the last
``Epoch(test)`` line of its newest log instead. What a folder holds (the
algorithm, backbone, shots, classes and the training run it tests) comes
from the ``sweep.json`` that ``tools/run_sweep.py`` writes beside it;
folder names are only grouped by, never parsed. Each seed's accuracy is
rounded to one decimal first (the original printed ``{acc:.1f}%`` and
parsed that), then the mean and the population standard deviation
(``np.std``) or, with ``--ci95``, ``1.96 * std / sqrt(n)`` are reported.
For base-to-new, the test of a run on its base classes is paired with the
test of the same run on the new classes, and H is the harmonic mean of the
seed-averaged base and new accuracies; the Average row is H of the
averages over datasets.

Examples:
    python tools/analysis_tools/summarize_results.py work_dirs
    python tools/analysis_tools/summarize_results.py work_dirs/base2new \\
        --ci95 --md summary.md --csv summary.csv
"""
import argparse
import csv
import glob
import json
import math
import os.path as osp
import re
import sys
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mmprompt.evaluation import base_new_summary, harmonic_mean

PROTOCOLS = ('fewshot', 'base2new', 'cross-dataset', 'dg')
METRICS_FILE = 'metrics.json'
RECORD_FILE = 'sweep.json'
#: The settings of a folder's sweep.json that the tables use.
SETTINGS = ('algorithm', 'backbone', 'shots', 'classes', 'trained_on', 'run')
_SEED_DIR = re.compile(r'^seed(\d+)$')
_TEST_LINE = re.compile(r'Epoch\(test\).*?\s{key}:\s*([-+.\deE]+)')


def round_seed(value: float, decimals: int = 1) -> float:
    """A seed's accuracy as the original printed it (``'%.1f'``)."""
    if decimals < 0:
        return float(value)
    return float(f'{value:.{decimals}f}')


def read_settings(seed_dir: str) -> Dict[str, Any]:
    """What a seed folder holds, from its ``sweep.json``.

    Args:
        seed_dir (str): A ``seed<S>`` folder.

    Returns:
        dict: The keys of ``SETTINGS``; None where the folder has no
        ``sweep.json`` (a run outside ``tools/run_sweep.py``).
    """
    path = osp.join(seed_dir, RECORD_FILE)
    record = {}
    if osp.isfile(path):
        with open(path) as f:
            record = json.load(f)
    return {key: record.get(key) for key in SETTINGS}


def read_seed_result(seed_dir: str, metric: str) -> Optional[float]:
    """The metric of one seed: ``metrics.json``, else the newest log.

    Args:
        seed_dir (str): A ``seed<S>`` folder.
        metric (str): The key, e.g. ``'accuracy/top1'``.

    Returns:
        float | None: None if the folder holds no test result.
    """
    path = osp.join(seed_dir, METRICS_FILE)
    if osp.isfile(path):
        with open(path) as f:
            metrics = json.load(f)
        if metric not in metrics:
            raise KeyError(f'{path} has no {metric!r} (it has '
                           f'{sorted(metrics)}); pick one with --metric')
        return float(metrics[metric])
    pattern = re.compile(_TEST_LINE.pattern.format(key=re.escape(metric)))
    for log in sorted(
            glob.glob(osp.join(seed_dir, '*', '*.log')), reverse=True):
        with open(log, errors='replace') as f:
            found = pattern.findall(f.read())
        if found:
            return float(found[-1])
    return None


def collect(work_dir: str, metric: str = 'accuracy/top1') -> List[dict]:
    """One record per seed folder with a result under ``work_dir``.

    Args:
        work_dir (str): Any level of ``<protocol>/<dataset>/<config>/
            seed<S>``.
        metric (str): The metric key. Defaults to 'accuracy/top1'.

    Returns:
        list[dict]: ``protocol``, ``dataset``, ``config`` (the folder's
        name), ``seed``, ``value`` and the settings of :func:`read_settings`,
        sorted.
    """
    records = []
    seed_dirs = glob.glob(osp.join(work_dir, '**', 'seed*'), recursive=True)
    if _SEED_DIR.match(osp.basename(osp.normpath(work_dir))):
        seed_dirs.append(work_dir)
    for seed_dir in sorted(set(map(osp.abspath, seed_dirs))):
        match = _SEED_DIR.match(osp.basename(seed_dir))
        if match is None or not osp.isdir(seed_dir):
            continue
        value = read_seed_result(seed_dir, metric)
        if value is None:
            continue
        config_dir = osp.dirname(seed_dir)
        dataset_dir = osp.dirname(config_dir)
        protocol = osp.basename(osp.dirname(dataset_dir))
        records.append(
            dict(
                protocol=protocol if protocol in PROTOCOLS else '',
                dataset=osp.basename(dataset_dir),
                config=osp.basename(config_dir),
                seed=int(match.group(1)),
                value=value,
                **read_settings(seed_dir)))
    return sorted(
        records,
        key=lambda r: (r['protocol'], r['dataset'], r['config'], r['seed']))


def seed_stats(values: Sequence[float], decimals: int = 1) -> Dict[str, float]:
    """Mean, population std and CI95 of rounded per-seed values.

    Args:
        values (Sequence[float]): One value per seed.
        decimals (int): Rounding of each value first; negative keeps them.
            Defaults to 1.

    Returns:
        dict: ``mean``, ``std``, ``ci95`` and ``n``.

    Examples:
        >>> s = seed_stats([91.81, 92.01, 92.17], decimals=2)  # COOP.md
        >>> f"{s['mean']:.2f}% +- {s['std']:.2f}%"
        '92.00% +- 0.15%'
    """
    v = np.array([round_seed(x, decimals) for x in values])
    std = float(np.std(v))
    return dict(
        mean=float(v.mean()),
        std=std,
        ci95=1.96 * std / math.sqrt(len(v)),
        n=len(v))


def summarize(records: List[dict], decimals: int = 1) -> List[dict]:
    """Group the seed records by protocol, dataset and config.

    Returns:
        list[dict]: One row per group: ``protocol``, ``dataset``,
        ``config``, the settings (``algorithm``, ``backbone``, ``shots``,
        ``classes``, ``trained_on``, ``run``; those of its first seed),
        ``seeds``, ``values`` (rounded), ``mean``, ``std``, ``ci95``,
        ``n``.
    """
    groups = defaultdict(list)
    for r in records:
        groups[(r['protocol'], r['dataset'], r['config'])].append(r)
    rows = []
    for (protocol, dataset, config), items in sorted(groups.items()):
        values = [i['value'] for i in items]
        rows.append(
            dict(
                protocol=protocol,
                dataset=dataset,
                config=config,
                **{key: items[0].get(key)
                   for key in SETTINGS},
                seeds=[i['seed'] for i in items],
                values=[round_seed(v, decimals) for v in values],
                **seed_stats(values, decimals)))
    return rows


def base_to_new(rows: List[dict], decimals: int = 1) -> List[dict]:
    """Pair the base-class and new-class tests of each run into B, N, H.

    The rows of a run (``run`` of sweep.json) with ``classes`` 'base' and
    'new' are paired; only seeds present in both are used. H is that of the
    seed-averaged B and N (:func:`mmprompt.evaluation.base_new_summary`).

    Returns:
        list[dict]: ``dataset``, ``config`` (the run), ``algorithm``,
        ``backbone``, ``seeds``, ``base``, ``base_std``, ``new``,
        ``new_std``, ``H``; then one ``dataset='Average'`` row per
        algorithm and backbone over the datasets.
    """
    halves = defaultdict(dict)
    for r in rows:
        if r['run'] is not None and r['classes'] in ('base', 'new'):
            halves[(r['protocol'], r['dataset'], r['run'])][r['classes']] = r
    pairs = []
    for (protocol, dataset, run), half in sorted(halves.items()):
        if len(half) < 2:
            continue
        base, new = half['base'], half['new']
        seeds = sorted(set(base['seeds']) & set(new['seeds']))
        if not seeds:
            continue
        b = [base['values'][base['seeds'].index(s)] for s in seeds]
        n = [new['values'][new['seeds'].index(s)] for s in seeds]
        summary = base_new_summary(b, n, decimals=decimals)
        pairs.append(
            dict(
                dataset=dataset,
                config=run,
                algorithm=base['algorithm'],
                backbone=base['backbone'],
                seeds=seeds,
                base=summary['base'],
                base_std=float(np.std(b)),
                new=summary['new'],
                new_std=float(np.std(n)),
                H=summary['H']))
    averages = defaultdict(list)
    for p in pairs:
        averages[(p['algorithm'], p['backbone'])].append(p)
    for (algorithm, backbone), items in sorted(averages.items()):
        if len(items) < 2:
            continue
        b = float(np.mean([p['base'] for p in items]))
        n = float(np.mean([p['new'] for p in items]))
        pairs.append(
            dict(
                dataset='Average',
                config=f'{len(items)} datasets',
                algorithm=algorithm,
                backbone=backbone,
                seeds=[],
                base=b,
                base_std=None,
                new=n,
                new_std=None,
                H=harmonic_mean(b, n)))
    return pairs


def _pm(mean: float, spread: Optional[float]) -> str:
    return f'{mean:.2f}' if spread is None else f'{mean:.2f} ± {spread:.2f}'


def markdown(rows: List[dict], pairs: List[dict], ci95: bool = False) -> str:
    """The summary as markdown tables.

    Args:
        rows (list[dict]): :func:`summarize` rows.
        pairs (list[dict]): :func:`base_to_new` rows.
        ci95 (bool): Report the 95% confidence interval instead of the
            standard deviation. Defaults to False.

    Returns:
        str: The tables.
    """
    spread = 'ci95' if ci95 else 'std'
    lines = [
        f'| protocol | dataset | config | seeds | accuracy (mean ± '
        f'{spread}) | per seed |', '|---|---|---|---|---|---|'
    ]
    for r in rows:
        lines.append(f"| {r['protocol']} | {r['dataset']} | {r['config']} | "
                     f"{' '.join(map(str, r['seeds']))} | "
                     f"{_pm(r['mean'], r[spread])} | "
                     f"{' / '.join(f'{v:g}' for v in r['values'])} |")
    if pairs:
        lines += [
            '', '| dataset | algorithm | backbone | seeds | base | new | H |',
            '|---|---|---|---|---|---|---|'
        ]
        for p in pairs:
            base_spread, new_spread = p['base_std'], p['new_std']
            if ci95 and base_spread is not None:
                scale = 1.96 / math.sqrt(len(p['seeds']))
                base_spread, new_spread = (base_spread * scale,
                                           new_spread * scale)
            lines.append(f"| {p['dataset']} | {p['algorithm']} | "
                         f"{p['backbone']} | "
                         f"{' '.join(map(str, p['seeds'])) or '-'} | "
                         f"{_pm(p['base'], base_spread)} | "
                         f"{_pm(p['new'], new_spread)} | {p['H']:.2f} |")
    return '\n'.join(lines) + '\n'


CSV_FIELDS = ('protocol', 'dataset', 'config', 'algorithm', 'backbone',
              'shots', 'classes', 'trained_on', 'run', 'n', 'seeds', 'values',
              'mean', 'std', 'ci95')
BASE2NEW_FIELDS = ('dataset', 'config', 'algorithm', 'backbone', 'seeds',
                   'base', 'base_std', 'new', 'new_std', 'H')


def _csv_value(value) -> str:
    if value is None:
        return ''
    if isinstance(value, list):
        return ' '.join(f'{v:g}' if isinstance(v, float) else str(v)
                        for v in value)
    if isinstance(value, float):
        return f'{value:.4f}'
    return str(value)


def write_csv(rows: List[dict], path: str, fields: Sequence[str]) -> None:
    """Write rows to a CSV file with the given columns."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for r in rows:
            writer.writerow([_csv_value(r.get(k)) for k in fields])


def read_csv(path: str) -> List[dict]:
    """Read a CSV of :func:`write_csv` (``CSV_FIELDS``) back into rows."""
    rows = []
    with open(path, newline='') as f:
        for r in csv.DictReader(f):
            row = {key: value or None for key, value in r.items()}
            row.update(
                protocol=r['protocol'],
                shots=int(r['shots']) if r.get('shots') else None,
                n=int(r['n']),
                seeds=[int(s) for s in r['seeds'].split()],
                values=[float(v) for v in r['values'].split()],
                mean=float(r['mean']),
                std=float(r['std']),
                ci95=float(r['ci95']))
            rows.append(row)
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Mean and std over seeds of the test accuracies under '
        'a work dir, with base-to-new H.')
    parser.add_argument(
        'work_dir', help='e.g. work_dirs or '
        'work_dirs/base2new')
    parser.add_argument(
        '--metric',
        default='accuracy/top1',
        help='the metric key of metrics.json (default: accuracy/top1)')
    parser.add_argument(
        '--ci95',
        action='store_true',
        help='report 1.96 * std / sqrt(n) instead of the std')
    parser.add_argument(
        '--decimals',
        type=int,
        default=1,
        help='round each seed to this many decimals first, as the original '
        '(default: 1; -1 keeps them)')
    parser.add_argument('--md', help='also write the markdown to this file')
    parser.add_argument('--csv', help='write one row per config to this CSV')
    parser.add_argument(
        '--base2new-csv', help='write the base/new/H rows to this CSV')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Entry point; returns the exit status (1 if nothing was found)."""
    args = parse_args(argv)
    if not osp.isdir(args.work_dir):
        print(
            f'summarize_results.py: error: {args.work_dir!r}: no such '
            'folder',
            file=sys.stderr)
        return 1
    rows = summarize(collect(args.work_dir, args.metric), args.decimals)
    if not rows:
        print(
            f'summarize_results.py: no seed<S>/{METRICS_FILE} (or test '
            f'log) under {args.work_dir!r}',
            file=sys.stderr)
        return 1
    pairs = base_to_new(rows, args.decimals)
    text = markdown(rows, pairs, ci95=args.ci95)
    print(text, end='')
    if args.md:
        with open(args.md, 'w') as f:
            f.write(text)
    if args.csv:
        write_csv(rows, args.csv, CSV_FIELDS)
    if args.base2new_csv:
        write_csv(pairs, args.base2new_csv, BASE2NEW_FIELDS)
    return 0


if __name__ == '__main__':
    sys.exit(main())
