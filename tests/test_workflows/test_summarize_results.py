# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/analysis_tools/summarize_results.py on fixture results, with the
expected numbers worked out by hand."""
import csv

import pytest
from workflow_testing import load_tool, write_metrics

summarize = load_tool('analysis_tools/summarize_results.py')
BASE = 'cocoop_vit-base-p16_clip-openai_1xb1-ep10_base2new-16shot-{}'


@pytest.fixture
def results(tmp_path):
    # dtd base 80.04 / 81.26 / 79.95 -> rounded 80.0 / 81.3 / 80.0:
    #   mean 241.3 / 3 = 80.4333, unrounded it would be 80.4167;
    #   deviations -0.4333, 0.8667, -0.4333: var 1.12667 / 3 = 0.37556,
    #   std 0.6128; ci95 = 1.96 * 0.6128 / sqrt(3) = 0.6935.
    # dtd new 55.96 / 56.04 / 56.0 -> 56.0 each: mean 56.0, std 0.
    #   H = 2 * 80.4333 * 56 / 136.4333 = 66.0288.
    # eurosat base 90.0 / 92.0 (seed 3 missing in new: left out), new 60.0 /
    #   61.0: B 91.0, N 60.5, H = 2 * 91 * 60.5 / 151.5 = 72.6799.
    # Average: B (80.4333 + 91) / 2 = 85.7167, N (56 + 60.5) / 2 = 58.25,
    #   H = 2 * 85.7167 * 58.25 / 143.9667 = 69.3632.
    def b2n(dataset, classes, seed, acc):
        name = BASE.format(dataset)
        folder = name if classes == 'base' else f'{name}_new'
        write_metrics(
            tmp_path,
            'base2new',
            dataset,
            folder,
            seed,
            acc,
            algorithm='cocoop',
            backbone='vit-base-p16',
            shots=16,
            classes=classes,
            trained_on=dataset,
            run=name)

    for seed, acc in zip((1, 2, 3), (80.04, 81.26, 79.95)):
        b2n('dtd', 'base', seed, acc)
    for seed, acc in zip((1, 2, 3), (55.96, 56.04, 56.0)):
        b2n('dtd', 'new', seed, acc)
    for seed, acc in zip((1, 2, 3), (90.0, 92.0, 50.0)):
        b2n('eurosat', 'base', seed, acc)
    for seed, acc in zip((1, 2), (60.0, 61.0)):
        b2n('eurosat', 'new', seed, acc)
    # A run outside the sweep (no sweep.json): a row, but no pair.
    write_metrics(tmp_path, 'base2new', 'dtd', 'by-hand', 1, 70.0)
    write_metrics(tmp_path, 'base2new', 'dtd', 'by-hand_new', 1, 60.0)
    # A few-shot run whose seed 2 only has a test log (no metrics.json).
    config = 'coop_resnet50_clip-openai_1xb32-ep50_1shot-dtd'
    write_metrics(tmp_path, 'fewshot', 'dtd', config, 1, 44.44, shots=1)
    log_dir = tmp_path / 'fewshot' / 'dtd' / config / 'seed2' / '2024_01'
    log_dir.mkdir(parents=True)
    (log_dir / '2024_01.log').write_text(
        '01/01 00:00:00 - mmengine - INFO - Epoch(test) [2/2]    '
        'accuracy/top1: 30.0000  data_time: 0.1  time: 0.2\n'
        '01/01 00:00:01 - mmengine - INFO - Epoch(test) [2/2]    '
        'accuracy/top1: 45.5600  data_time: 0.1  time: 0.2\n')
    return tmp_path


def test_markdown_table(results, capsys):
    assert summarize.main([str(results)]) == 0
    out = capsys.readouterr().out
    dtd, eurosat = BASE.format('dtd'), BASE.format('eurosat')
    assert (f'| base2new | dtd | {dtd} | 1 2 3 | 80.43 ± 0.61 | '
            '80 / 81.3 / 80 |') in out
    assert f'| base2new | dtd | {dtd}_new | 1 2 3 | 56.00 ± 0.00 |' in out
    # 44.4 and 45.6 (the last test line of the log): 45.0 ± 0.6.
    assert ('| fewshot | dtd | coop_resnet50_clip-openai_1xb32-ep50_1shot-'
            'dtd | 1 2 | 45.00 ± 0.60 | 44.4 / 45.6 |') in out
    assert f'| base2new | eurosat | {eurosat} | 1 2 3 |' in out
    assert ('| dtd | cocoop | vit-base-p16 | 1 2 3 | 80.43 ± 0.61 | '
            '56.00 ± 0.00 | 66.03 |') in out
    assert ('| eurosat | cocoop | vit-base-p16 | 1 2 | 91.00 ± 1.00 | '
            '60.50 ± 0.50 | 72.68 |') in out
    assert ('| Average | cocoop | vit-base-p16 | - | 85.72 | 58.25 | '
            '69.36 |') in out
    # The settings come from sweep.json, not from the folder names.
    assert '| base2new | dtd | by-hand_new | 1 | 60.00 ± 0.00 |' in out
    pairs = [line for line in out.splitlines() if line.startswith('| dtd |')]
    assert len(pairs) == 1  # by-hand has no base/new pair


def test_ci95_and_csv(results, tmp_path, capsys):
    table, rows = tmp_path / 'summary.md', tmp_path / 'summary.csv'
    pairs = tmp_path / 'b2n.csv'
    assert summarize.main([
        str(results), '--ci95', '--md',
        str(table), '--csv',
        str(rows), '--base2new-csv',
        str(pairs)
    ]) == 0
    out = capsys.readouterr().out
    assert table.read_text() == out
    assert 'accuracy (mean ± ci95)' in out
    assert f"| {BASE.format('dtd')} | 1 2 3 | 80.43 ± 0.69 |" in out
    with open(rows) as f:
        first = list(csv.DictReader(f))[2]  # after by-hand and by-hand_new
    assert first['config'] == BASE.format('dtd')
    assert (first['classes'], first['run']) == ('base', BASE.format('dtd'))
    assert first['values'] == '80 81.3 80'
    assert float(first['mean']) == pytest.approx(80.4333, abs=1e-4)
    assert float(first['std']) == pytest.approx(0.6128, abs=1e-4)
    assert summarize.read_csv(str(rows))[2]['seeds'] == [1, 2, 3]
    assert summarize.read_csv(str(rows))[2]['shots'] == 16
    by_hand = [
        r for r in summarize.read_csv(str(rows)) if r['config'] == 'by-hand'
    ]
    assert by_hand[0]['classes'] is None and by_hand[0]['shots'] is None
    with open(pairs) as f:
        last = list(csv.DictReader(f))[-1]
    assert last['dataset'] == 'Average'
    assert float(last['H']) == pytest.approx(69.3632, abs=1e-4)


def test_unrounded_and_errors(results, tmp_path, capsys):
    assert summarize.main([str(results), '--decimals', '-1']) == 0
    assert '80.42 ± 0.60' in capsys.readouterr().out
    assert summarize.main([str(tmp_path / 'empty')]) == 1
    (tmp_path / 'empty').mkdir()
    assert summarize.main([str(tmp_path / 'empty')]) == 1
    with pytest.raises(KeyError, match='accuracy/top5'):
        summarize.main([str(results), '--metric', 'accuracy/top5'])
