# Copyright (c) mmprompt contributors. All rights reserved.
"""A real base-to-new sweep (the demo's CoOp config on tiny generated data,
2 epochs, 1 seed) through tools/train.py and tools/test.py, then the
summary, the plots and the curves of its outputs."""
import json

import pytest
from PIL import Image
from workflow_testing import (SWEEP_RUN, load_tool, make_tiny_data,
                              write_sweep_config)

from mmprompt.evaluation import harmonic_mean


@pytest.fixture(scope='module')
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp('sweep')
    data_root = make_tiny_data(root / 'data')
    config = write_sweep_config(root / 'configs', data_root)
    run_sweep = load_tool('run_sweep.py')
    # A dataset of the sweep's table, as a user adds one.
    run_sweep.DATASETS['shapes'] = run_sweep.Dataset(
        'SplitJsonDataset', data_root, num_classes=4)
    argv = [
        'base2new', '--method', 'coop', '--config',
        str(config), '--datasets', 'shapes', '--seeds', '1', '--work-dir',
        str(root / 'work_dirs'), '--cfg-options', 'train_cfg.max_epochs=2',
        'train_cfg.val_interval=1', 'param_scheduler.T_max=2'
    ]
    status = run_sweep.main(argv)
    return dict(
        root=root,
        work_dirs=root / 'work_dirs',
        status=status,
        run_sweep=run_sweep,
        argv=argv)


def test_sweep_runs_and_skips(sweep, capsys):
    assert sweep['status'] == 0
    base = sweep['work_dirs'] / 'base2new' / 'shapes' / SWEEP_RUN
    new = base.parent / f'{SWEEP_RUN}_new'
    assert (base / 'seed1' / 'epoch_2.pth').is_file()
    for folder, classes in ((base, 'base'), (new, 'new')):
        metrics = json.loads((folder / 'seed1' / 'metrics.json').read_text())
        assert 0 <= metrics['accuracy/top1'] <= 100
        record = json.loads((folder / 'seed1' / 'sweep.json').read_text())
        assert record['classes'] == classes and record['run'] == SWEEP_RUN
    # Everything is done: a second sweep runs nothing.
    capsys.readouterr()
    assert sweep['run_sweep'].main(sweep['argv']) == 0
    out = capsys.readouterr().out
    assert '1 jobs: 1 done already, 0 to run' in out
    assert 'train.py' not in out


def test_summary_of_the_sweep(sweep, capsys):
    summarize = load_tool('analysis_tools/summarize_results.py')
    folder = sweep['work_dirs'] / 'base2new' / 'shapes'
    b = json.loads((folder / SWEEP_RUN / 'seed1' /
                    'metrics.json').read_text())['accuracy/top1']
    n = json.loads((folder / f'{SWEEP_RUN}_new' / 'seed1' /
                    'metrics.json').read_text())['accuracy/top1']
    b, n = round(b, 1), round(n, 1)
    assert summarize.main([str(sweep['work_dirs'])]) == 0
    out = capsys.readouterr().out
    assert (f'| shapes | coop | mmprompt-tiny-vit | 1 | {b:.2f} ± 0.00 | '
            f'{n:.2f} ± 0.00 | {harmonic_mean(b, n):.2f} |') in out


def test_plots_and_curves_of_the_sweep(sweep, tmp_path):
    plot = load_tool('analysis_tools/plot_results.py')
    assert plot.main([
        str(sweep['work_dirs']), '--out-dir',
        str(tmp_path), '--formats', 'png'
    ]) == 0
    assert Image.open(tmp_path / 'base2new.png').size[0] > 100
    assert not (tmp_path / 'fewshot.png').exists()  # no few-shot runs

    analyze = load_tool('analysis_tools/analyze_logs.py')
    run = sweep['work_dirs'] / 'base2new' / 'shapes' / SWEEP_RUN / 'seed1'
    log = analyze.load_json_log(str(run))
    # 2 base classes x 4 shots, batch 4: 2 epochs of 2 iterations, each
    # logged, and a validation per epoch.
    assert [r['step'] for r in log['train']] == [1, 2, 3, 4]
    assert [r['step'] for r in log['val']] == [1, 2]
    x, _, phase = analyze.curve(log, 'loss', 'epoch')
    assert phase == 'train' and x[-1] == pytest.approx(2.0)
    out = tmp_path / 'curves.png'
    assert analyze.main([
        'plot_curve',
        str(run), '--keys', 'loss', 'accuracy/top1', '--out',
        str(out)
    ]) == 0
    one = tmp_path / 'loss.png'
    assert analyze.main(
        ['plot_curve',
         str(run), '--keys', 'loss', '--out',
         str(one)]) == 0
    with Image.open(out) as two_panels, Image.open(one) as one_panel:
        assert two_panels.size[1] > 1.5 * one_panel.size[1]
