# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt configs under mmpretrain's own tools (``mmpretrain/.mim/tools``).

Each tool runs unchanged in a fresh process, on the demo config and on a
shipped model-zoo config (``conftest.py`` points both at tiny data), as
the "with mmpretrain's tools" section of docs/get_started.md shows them.
"""
import pickle

import pytest
import torch
from compat_testing import CALTECH_CLASSES, read_record, run_tool

from mmprompt.utils import load_checkpoint_file


def _ok(result):
    assert result.returncode == 0, (
        result.stdout[-2000:] + result.stderr[-4000:])
    return result


# ---------------------------------------------------------------------------
# tools/train.py
# ---------------------------------------------------------------------------
def test_train_script_runs_the_demo_config(demo_config, demo_classes,
                                           tmp_path):
    # As a user types it: no --no-persistent-workers although the demo
    # loads in the main process (num_workers=0).
    work_dir = tmp_path / 'work'
    _ok(
        run_tool(
            'train.py',
            demo_config,
            '--work-dir',
            work_dir,
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'param_scheduler.T_max=1',
            cwd=tmp_path))
    checkpoint = load_checkpoint_file(str(work_dir / 'epoch_1.pth'))
    state = checkpoint['state_dict']
    assert 'head.prompt_learner.ctx' in state
    assert not any(key.startswith('clip.') for key in state)
    # What mmpretrain's get_model() restores the class names from.
    assert list(checkpoint['meta']['dataset_meta']['classes']) == \
        demo_classes


def test_train_script_runs_a_shipped_config(shipped_config, tmp_path):
    work_dir = tmp_path / 'work'
    _ok(
        run_tool(
            'train.py',
            shipped_config,
            '--work-dir',
            work_dir,
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'train_cfg.val_interval=1',
            'param_scheduler.T_max=1',
            cwd=tmp_path))
    assert (work_dir / 'epoch_1.pth').is_file()


# ---------------------------------------------------------------------------
# tools/analysis_tools/get_flops.py (no --cfg-options: a config file)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('which', ['demo', 'shipped'])
def test_get_flops(which, demo_config, shipped_config, tmp_path):
    config = demo_config if which == 'demo' else shipped_config
    result = _ok(
        run_tool(
            'analysis_tools/get_flops.py',
            config,
            '--shape',
            '32',
            cwd=tmp_path))
    assert 'Flops:' in result.stdout and 'Params:' in result.stdout
    # The frozen image tower is what get_flops counts (extract_feat).
    assert 'clip' in result.stdout


# ---------------------------------------------------------------------------
# tools/visualization/browse_dataset.py
# ---------------------------------------------------------------------------
def test_browse_dataset_demo(demo_config, demo_classes, tmp_path):
    out = tmp_path / 'browse'
    record = tmp_path / 'record.json'
    _ok(
        run_tool(
            'visualization/browse_dataset.py',
            demo_config,
            '--not-show',
            '--output-dir',
            out,
            '--phase',
            'test',
            '--show-number',
            '3',
            # The other modes fail in mmpretrain 1.2's make_grid with
            # matplotlib 3.11, whatever the dataset (adjust_bbox() wants a
            # renderer).
            '--mode',
            'original',
            cwd=tmp_path,
            record=record))
    assert len(list(out.glob('*.png'))) == 3
    assert read_record(record)['visualize_cls'] == [demo_classes] * 3


def test_browse_dataset_shipped(shipped_config, tmp_path):
    out = tmp_path / 'browse'
    record = tmp_path / 'record.json'
    _ok(
        run_tool(
            'visualization/browse_dataset.py',
            shipped_config,
            '--not-show',
            '--output-dir',
            out,
            '--show-number',
            '2',
            '--mode',
            'original',
            cwd=tmp_path,
            record=record))
    assert len(list(out.iterdir())) == 2  # named as the images
    # mmprompt's Caltech101 (CoOp's split), not mmpretrain's of that name.
    assert read_record(record)['visualize_cls'] == [CALTECH_CLASSES] * 2


# ---------------------------------------------------------------------------
# tools/test.py --out, then the analysis tools on its predictions
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def demo_test_run(demo_config, demo_checkpoint, tmp_path_factory):
    """mmpretrain's tools/test.py on the demo, writing its predictions
    (--out: DataSamples in a pkl) and drawing every 8th (--show-dir)."""
    folder = tmp_path_factory.mktemp('compat_test')
    _ok(
        run_tool(
            'test.py',
            demo_config,
            demo_checkpoint,
            '--work-dir',
            folder / 'work',
            '--out',
            folder / 'preds.pkl',
            '--show-dir',
            folder / 'vis',
            '--interval',
            '8',
            cwd=folder,
            record=folder / 'record.json'))
    return folder


@pytest.fixture(scope='module')
def demo_predictions(demo_test_run):
    return demo_test_run / 'preds.pkl'


def test_test_script_writes_and_draws_predictions(demo_test_run, demo_classes):
    with open(demo_test_run / 'preds.pkl', 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 3 * len(demo_classes)
    assert predictions[0]['pred_score'].shape == (len(demo_classes), )
    # --show-dir: the config's VisualizationHook, labelled with the names.
    drawn = list((demo_test_run / 'vis').glob('*.png'))
    assert len(drawn) == 3
    assert read_record(demo_test_run / 'record.json')['visualize_cls'] == \
        [demo_classes] * 3


@pytest.fixture(scope='module')
def shipped_predictions(shipped_config, tmp_path_factory):
    """Predictions on the tiny Caltech101 test set in the format of
    mmpretrain's tools/test.py --out (mmengine's DumpResults)."""
    from mmengine.evaluator import DumpResults
    from mmpretrain.structures import DataSample
    out = tmp_path_factory.mktemp('compat_preds') / 'preds.pkl'
    dumper = DumpResults(out_file_path=str(out))
    k = len(CALTECH_CLASSES)
    samples = []
    for idx in range(2 * k):
        score = torch.full((k, ), 0.1)
        score[(idx // 2 + idx % 2) % k] = 0.7  # half right, half wrong
        sample = DataSample(metainfo=dict(sample_idx=idx))
        sample.set_gt_label(idx // 2)
        sample.set_pred_score(score)
        sample.set_pred_label(int(score.argmax()))
        samples.append(sample.to_dict())
    dumper.process(None, samples)
    dumper.compute_metrics(dumper.results)
    return out


@pytest.mark.parametrize('which', ['demo', 'shipped'])
def test_analyze_results(which, request, demo_classes, tmp_path):
    config = request.getfixturevalue(f'{which}_config')
    predictions = request.getfixturevalue(f'{which}_predictions')
    classes = demo_classes if which == 'demo' else CALTECH_CLASSES
    out = tmp_path / 'analysis'
    record = tmp_path / 'record.json'
    _ok(
        run_tool(
            'analysis_tools/analyze_results.py',
            config,
            predictions,
            '--out-dir',
            out,
            '--topk',
            '2',
            cwd=tmp_path,
            record=record))
    drawn = list((out / 'success').glob('*.png')) + list(
        (out / 'fail').glob('*.png'))
    assert drawn
    assert read_record(record)['visualize_cls'] == [classes] * len(drawn)


@pytest.mark.parametrize('which', ['demo', 'shipped'])
def test_confusion_matrix_from_predictions(which, request, demo_classes,
                                           tmp_path):
    config = request.getfixturevalue(f'{which}_config')
    predictions = request.getfixturevalue(f'{which}_predictions')
    classes = demo_classes if which == 'demo' else CALTECH_CLASSES
    record = tmp_path / 'record.json'
    _ok(
        run_tool(
            'analysis_tools/confusion_matrix.py',
            config,
            predictions,
            '--show-path',
            tmp_path / 'cm.png',
            '--out',
            tmp_path / 'cm.pkl',
            cwd=tmp_path,
            record=record))
    assert (tmp_path / 'cm.png').is_file()
    # The class names on the axes: None (numbers only) before.
    assert read_record(record)['confusion_matrix_plot'] == [classes]


def test_confusion_matrix_from_a_checkpoint(demo_config, demo_checkpoint,
                                            demo_classes, tmp_path):
    record = tmp_path / 'record.json'
    _ok(
        run_tool(
            'analysis_tools/confusion_matrix.py',
            demo_config,
            demo_checkpoint,
            '--show-path',
            tmp_path / 'cm.png',
            cwd=tmp_path,
            record=record))
    assert read_record(record)['confusion_matrix_plot'] == [demo_classes]
