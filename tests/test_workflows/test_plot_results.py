# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/analysis_tools/plot_results.py on fixture results."""
import pytest
from PIL import Image
from workflow_testing import load_tool, write_metrics

plot = load_tool('analysis_tools/plot_results.py')
SHOTS = (1, 2, 4, 8, 16)
EPOCHS = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}


@pytest.fixture
def results(tmp_path):
    root = tmp_path / 'work_dirs'
    for dataset, offset in (('dtd', 40), ('eurosat', 60)):
        for algo, gain in (('coop', 5), ('coop-m4', 3)):
            for k in SHOTS:
                config = (f'{algo}_resnet50_clip-openai_1xb32-ep{EPOCHS[k]}_'
                          f'{k}shot-{dataset}')
                for seed, noise in ((1, -0.5), (2, 0.5)):
                    acc = offset + gain * SHOTS.index(k) + noise
                    write_metrics(
                        root,
                        'fewshot',
                        dataset,
                        config,
                        seed,
                        acc,
                        algorithm=algo,
                        backbone='resnet50',
                        shots=k,
                        classes='all',
                        trained_on=dataset,
                        run=config)
        b2n = f'cocoop_vit-base-p16_clip-openai_1xb1-ep10_base2new-16shot-' \
            f'{dataset}'
        settings = dict(
            algorithm='cocoop',
            backbone='vit-base-p16',
            shots=16,
            trained_on=dataset,
            run=b2n)
        write_metrics(
            root,
            'base2new',
            dataset,
            b2n,
            1,
            80.0,
            classes='base',
            **settings)
        write_metrics(
            root,
            'base2new',
            dataset,
            b2n + '_new',
            1,
            60.0,
            classes='new',
            **settings)
    # An ImageNet model tested on DTD is no point of a DTD curve.
    write_metrics(
        root,
        'fewshot',
        'dtd',
        'imagenet-model-on-dtd',
        1,
        10.0,
        algorithm='coop',
        backbone='resnet50',
        shots=16,
        classes='all',
        trained_on='imagenet',
        run='imagenet-model')
    return root


def test_curves(results):
    rows = plot.load_rows([str(results)])
    curves = plot.fewshot_curves(rows)
    assert sorted(curves) == ['Average', 'dtd', 'eurosat']
    assert sorted(curves['dtd']) == ['coop resnet50', 'coop-m4 resnet50']
    # Seeds 40 +- 0.5 and 60 + 5 * 4 +- 0.5: mean, population std.
    assert curves['dtd']['coop resnet50'][1] == pytest.approx((40, 0.5))
    assert curves['eurosat']['coop resnet50'][16] == pytest.approx((80, 0.5))
    assert curves['Average']['coop resnet50'][16][0] == pytest.approx(70)


def test_figures(results, tmp_path, capsys):
    out = tmp_path / 'plots'
    assert plot.main([str(results), '--out-dir', str(out)]) == 0
    for name in ('fewshot', 'base2new'):
        with Image.open(out / f'{name}.png') as image:
            image.load()
            assert image.size[0] > 300 and image.size[1] > 200
        assert (out / f'{name}.pdf').read_bytes().startswith(b'%PDF')
    assert str(out / 'fewshot.png') in capsys.readouterr().out


def test_from_csv(results, tmp_path):
    summarize = load_tool('analysis_tools/summarize_results.py')
    table = tmp_path / 'summary.csv'
    assert summarize.main([str(results), '--csv', str(table)]) == 0
    from_csv = plot.fewshot_curves(plot.load_rows([str(table)]))
    assert from_csv == plot.fewshot_curves(plot.load_rows([str(results)]))
    out = tmp_path / 'csv_plots'
    assert plot.main([str(table), '--out-dir',
                      str(out), '--formats', 'png']) == 0
    assert sorted(p.name
                  for p in out.iterdir()) == ['base2new.png', 'fewshot.png']


def test_nothing_to_plot(tmp_path, capsys):
    (tmp_path / 'empty').mkdir()
    assert plot.main([str(tmp_path / 'empty'), '--out-dir',
                      str(tmp_path)]) == 1
    assert plot.main([str(tmp_path / 'missing.csv')]) == 1
    assert 'neither a work dir' in capsys.readouterr().err
