# Copyright (c) mmprompt contributors. All rights reserved.
"""Plot the results of sweeps: few-shot curves and base/new/H bars.

* ``fewshot.{png,pdf}``: one panel per dataset (and an Average panel),
  x = shots (1, 2, 4, 8, 16), y = mean accuracy over seeds with a band of
  ± one std, one line per method (algorithm and backbone), as CoOp's
  Fig. 3.
* ``base2new.{png,pdf}``: one panel per dataset, bars of base, new and H
  per method.

The inputs are work dirs of ``tools/run_sweep.py`` or CSV files of
``summarize_results.py --csv`` (the numbers are the same: seeds rounded to
one decimal, then averaged).

Examples:
    python tools/analysis_tools/plot_results.py work_dirs --out-dir plots
    python tools/analysis_tools/plot_results.py coop.csv cocoop.csv \\
        --out-dir plots --formats png
"""
import argparse
import importlib.util
import math
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use('Agg')  # files only, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _load_summarizer():
    """``summarize_results.py`` beside this file (tools/ is no package)."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'summarize_results.py')
    spec = importlib.util.spec_from_file_location('mmprompt_summarize', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


summarizer = _load_summarizer()


def load_rows(inputs: Sequence[str],
              metric: str = 'accuracy/top1',
              decimals: int = 1) -> List[dict]:
    """Per-config rows from work dirs and summary CSV files.

    Args:
        inputs (Sequence[str]): Work dirs and/or ``.csv`` files.
        metric (str): The metric of ``metrics.json``.
            Defaults to 'accuracy/top1'.
        decimals (int): Rounding of each seed. Defaults to 1.

    Returns:
        list[dict]: Rows as :func:`summarize_results.summarize` gives.
    """
    rows = []
    for item in inputs:
        if osp.isdir(item):
            rows += summarizer.summarize(
                summarizer.collect(item, metric), decimals)
        elif osp.isfile(item) and item.endswith('.csv'):
            rows += summarizer.read_csv(item)
        else:
            raise FileNotFoundError(
                f'{item!r} is neither a work dir nor a .csv file of '
                'summarize_results.py')
    return rows


def method_label(row: dict) -> str:
    """``'<algorithm> <backbone>'``, e.g. ``'coop resnet50'``."""
    return ' '.join(p for p in (row['algorithm'], row['backbone']) if p)


def _grid(count: int) -> tuple:
    cols = min(4, count)
    return math.ceil(count / cols), cols


def _save(fig, out_dir: str, name: str, formats: Sequence[str]) -> list:
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for fmt in formats:
        path = osp.join(out_dir, f'{name}.{fmt}')
        fig.savefig(path, bbox_inches='tight', dpi=120)
        paths.append(path)
    plt.close(fig)
    return paths


def fewshot_curves(rows: List[dict]) -> Dict[str, Dict[str, dict]]:
    """``{dataset: {method: {shots: (mean, std)}}}`` of the few-shot rows,
    with an ``'Average'`` dataset over the datasets every method has at
    every shot."""
    curves = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r['protocol'] not in ('fewshot', '') or r['shots'] is None:
            continue
        # Tests of a model on other classes or another dataset (the
        # settings sweep.json records) are no points of its curve.
        if r.get('classes') not in (None, 'all') or r.get('trained_on') \
                not in (None, r['dataset']):
            continue
        curves[r['dataset']][method_label(r)][r['shots']] = (r['mean'],
                                                             r['std'])
    if len(curves) >= 2:
        methods = set.intersection(*(set(m) for m in curves.values()))
        average = {}
        for method in sorted(methods):
            shots = set.intersection(*(set(c[method])
                                       for c in curves.values()))
            average[method] = {
                k: (float(np.mean([c[method][k][0]
                                   for c in curves.values()])), 0.0)
                for k in sorted(shots)
            }
        if any(average.values()):
            curves['Average'] = average
    return {d: dict(m) for d, m in curves.items()}


def plot_fewshot(rows: List[dict],
                 out_dir: str,
                 formats: Sequence[str] = ('png', 'pdf')) -> list:
    """Draw the few-shot curves; returns the written files ([] if none)."""
    curves = fewshot_curves(rows)
    if not curves:
        return []
    datasets = sorted(d for d in curves if d != 'Average')
    if 'Average' in curves:
        datasets.append('Average')
    nrows, ncols = _grid(len(datasets))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        for method, points in sorted(curves[dataset].items()):
            shots = sorted(points)
            mean = np.array([points[k][0] for k in shots])
            std = np.array([points[k][1] for k in shots])
            ax.plot(shots, mean, marker='o', label=method)
            ax.fill_between(shots, mean - std, mean + std, alpha=0.2)
        ax.set_xscale('log', base=2)
        ax.set_xticks([1, 2, 4, 8, 16])
        ax.set_xticklabels(['1', '2', '4', '8', '16'])
        ax.set_title(dataset)
        ax.set_xlabel('shots per class')
        ax.set_ylabel('accuracy (%)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis('off')
    fig.tight_layout()
    return _save(fig, out_dir, 'fewshot', formats)


def plot_base2new(rows: List[dict],
                  out_dir: str,
                  formats: Sequence[str] = ('png', 'pdf')) -> list:
    """Draw base/new/H bars; returns the written files ([] if none)."""
    pairs = summarizer.base_to_new(rows, decimals=-1)
    if not pairs:
        return []
    by_dataset = defaultdict(dict)
    for p in pairs:
        by_dataset[p['dataset']][method_label(p)] = p
    datasets = sorted(d for d in by_dataset if d != 'Average')
    if 'Average' in by_dataset:
        datasets.append('Average')
    methods = sorted({m for d in by_dataset.values() for m in d})
    nrows, ncols = _grid(len(datasets))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False)
    width = 0.8 / len(methods)
    x = np.arange(3)
    for ax, dataset in zip(axes.flat, datasets):
        for i, method in enumerate(methods):
            p = by_dataset[dataset].get(method)
            if p is None:
                continue
            values = [p['base'], p['new'], p['H']]
            bars = ax.bar(
                x + (i - (len(methods) - 1) / 2) * width,
                values,
                width,
                label=method)
            ax.bar_label(bars, fmt='%.1f', fontsize='x-small')
        ax.set_xticks(x)
        ax.set_xticklabels(['base', 'new', 'H'])
        ax.set_title(dataset)
        ax.set_ylabel('accuracy (%)')
        ax.set_ylim(0, 105)
        ax.legend(fontsize='small')
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis('off')
    fig.tight_layout()
    return _save(fig, out_dir, 'base2new', formats)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Few-shot curves and base/new/H bars from sweep '
        'results.')
    parser.add_argument(
        'inputs',
        nargs='+',
        help='work dirs of run_sweep.py and/or CSV files of '
        'summarize_results.py --csv')
    parser.add_argument(
        '--out-dir', default='plots', help='where the figures go')
    parser.add_argument(
        '--formats',
        nargs='+',
        default=['png', 'pdf'],
        help='file formats (default: png pdf)')
    parser.add_argument(
        '--metric', default='accuracy/top1', help='metric of metrics.json')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Entry point; returns the exit status (1 if nothing was plotted)."""
    args = parse_args(argv)
    try:
        rows = load_rows(args.inputs, args.metric)
    except FileNotFoundError as err:
        print(f'plot_results.py: error: {err}', file=sys.stderr)
        return 1
    written = plot_fewshot(rows, args.out_dir, args.formats)
    written += plot_base2new(rows, args.out_dir, args.formats)
    if not written:
        print(
            'plot_results.py: no few-shot or base-to-new results in '
            f'{args.inputs}',
            file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
