# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/analysis_tools/analyze_logs.py on a json log written as mmengine
writes it (2 epochs of 10 iterations, logged every 4, a val per epoch)."""
import json

import pytest
from PIL import Image
from workflow_testing import load_tool

analyze = load_tool('analysis_tools/analyze_logs.py')


@pytest.fixture
def work_dir(tmp_path):
    lines = []
    for epoch in (1, 2):
        for step in (4, 8, 10):  # the last iteration of an epoch is logged
            it = (epoch - 1) * 10 + step
            lines.append(
                dict(
                    lr=0.002 if epoch > 1 else 1e-5,
                    data_time=0.01,
                    loss=2.0 / it,
                    time=0.5 if it == 4 else 0.1,
                    epoch=epoch,
                    iter=it,
                    step=it))
        lines.append({
            'accuracy/top1': 50.0 + 10 * epoch,
            'data_time': 0.02,
            'time': 0.05,
            'step': epoch
        })
    vis = tmp_path / 'run' / '20240101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text('\n'.join(map(json.dumps, lines)) + '\n')
    return tmp_path / 'run'


def test_load_and_curves(work_dir):
    log = analyze.load_json_log(str(work_dir))
    assert len(log['train']) == 6 and len(log['val']) == 2
    assert analyze.iters_per_epoch(log['train']) == 10
    x, y, phase = analyze.curve(log, 'loss', 'epoch')
    assert phase == 'train'
    assert list(x) == pytest.approx([0.4, 0.8, 1.0, 1.4, 1.8, 2.0])
    assert y[0] == pytest.approx(0.5)
    x, y, phase = analyze.curve(log, 'accuracy/top1', 'iter')
    assert phase == 'val' and list(x) == [10, 20] and list(y) == [60, 70]
    with pytest.raises(KeyError, match='accuracy/top5'):
        analyze.curve(log, 'accuracy/top5', 'epoch')


def test_plot_curve(work_dir, tmp_path, capsys):
    out = tmp_path / 'figs' / 'curves.png'
    assert analyze.main([
        'plot_curve',
        str(work_dir),
        str(work_dir / '20240101_000000' / 'vis_data' / 'scalars.json'),
        '--keys', 'loss', 'accuracy/top1', '--legend', 'a', 'b', '--out',
        str(out)
    ]) == 0
    with Image.open(out) as image:
        image.load()
        assert image.size[0] > 300
    assert analyze.main(
        ['plot_curve',
         str(work_dir), '--keys', 'nope', '--out',
         str(out)]) == 1
    assert "no 'nope' in the log" in capsys.readouterr().err


def test_train_time(work_dir, capsys):
    # The first record (0.5 s, warm-up) is left out: 0.1 s/iter.
    assert analyze.train_time(str(work_dir)) == pytest.approx(
        dict(iter_time=0.1, epoch_time=1.0))
    assert analyze.main(['cal_train_time', str(work_dir)]) == 0
    assert '0.1000 s/iter, 1.00 s/epoch' in capsys.readouterr().out
