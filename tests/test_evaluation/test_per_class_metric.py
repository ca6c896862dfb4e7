# Copyright (c) mmprompt contributors. All rights reserved.
"""Macro-F1, per-class accuracy and H against hand computations."""
import numpy as np
import pytest
import torch

import mmprompt  # noqa: F401
from mmprompt.evaluation import (PerClassMetric, base_new_summary,
                                 harmonic_mean, per_class_scores)
from mmprompt.registry import METRICS


def reference(y_true, y_pred):
    """sklearn's f1_score(average='macro', labels=unique(y_true)), by hand."""
    f1s, accs = [], []
    for c in sorted(set(y_true)):
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        precision = tp / (tp + fp) if tp + fp else 0.
        recall = tp / (tp + fn)
        f1s.append(2 * precision * recall / (precision + recall) if precision +
                   recall else 0.)
        accs.append(recall)
    acc = np.mean([t == p for t, p in zip(y_true, y_pred)])
    return 100 * acc, 100 * np.mean(f1s), 100 * np.mean(accs)


def samples(y_true, y_pred, num_classes, use_score):
    out = []
    for t, p in zip(y_true, y_pred):
        s = dict(gt_label=torch.tensor([t]))
        if use_score:
            score = torch.rand(num_classes) * 0.5
            score[p] = 1.
            s['pred_score'] = score
        else:
            s['pred_label'] = torch.tensor([p])
        out.append(s)
    return out


@pytest.mark.parametrize('use_score', [False, True])
def test_against_hand_computation(use_score):
    rng = np.random.default_rng(0)
    # class 5 is predicted but never true: it must not enter the macro mean
    y_true = rng.integers(0, 5, 200).tolist()
    y_pred = [
        t if rng.random() < 0.6 else int(rng.integers(0, 6)) for t in y_true
    ]
    metric = METRICS.build(dict(type='PerClassMetric'))
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(6)])
    for i in range(0, 200, 64):
        metric.process(
            None, samples(y_true[i:i + 64], y_pred[i:i + 64], 6, use_score))
    res = metric.evaluate(200)
    acc, f1, mean_acc = reference(y_true, y_pred)
    assert res['per_class/accuracy'] == pytest.approx(acc, abs=1e-10)
    assert res['per_class/error_rate'] == pytest.approx(100 - acc, abs=1e-10)
    assert res['per_class/macro_f1'] == pytest.approx(f1, abs=1e-10)
    assert res['per_class/mean_accuracy'] == pytest.approx(mean_acc, abs=1e-10)
    # a class absent from y_true would lower the mean if it were counted
    assert f1 != pytest.approx(
        100 * np.mean([*per_class_scores(y_true, y_pred)['f1'] / 100, 0.]))


def test_per_class_scores_small_case():
    y_true = [0, 0, 0, 1, 2, 2]
    y_pred = [0, 1, 0, 1, 1, 2]
    s = per_class_scores(np.array(y_true), np.array(y_pred))
    np.testing.assert_allclose(s['accuracy'], [200 / 3, 100, 50])
    # class 1: tp 1, fp 2 -> p 1/3, r 1 -> f1 0.5
    np.testing.assert_allclose(s['f1'], [80, 50, 200 / 3])


def test_log_per_class(monkeypatch):
    import mmprompt.evaluation.metrics as m
    logged = []
    monkeypatch.setattr(m, 'print_log', lambda msg, **kw: logged.append(msg))
    metric = PerClassMetric(log_per_class=True)
    metric.dataset_meta = dict(classes=['cat', 'dog'])
    metric.process(None, samples([0, 1], [0, 0], 2, False))
    metric.evaluate(2)
    assert 'dog' in logged[0] and 'accuracy: 0.0%' in logged[0]


def test_harmonic_mean():
    assert harmonic_mean(80.47, 71.69) == pytest.approx(2 * 80.47 * 71.69 /
                                                        (80.47 + 71.69))
    assert harmonic_mean(0, 0) == 0
    assert harmonic_mean(50, 50) == 50
    with pytest.raises(ValueError):
        harmonic_mean(-1, 3)


def test_base_new_summary_rounds_seeds_first():
    res = base_new_summary([80.04, 81.06, 79.95], [70.0, 71.0, 72.0])
    b = np.mean([80.0, 81.1, 80.0])  # printed with one decimal
    n = 71.0
    assert res['base'] == pytest.approx(b)
    assert res['new'] == pytest.approx(n)
    assert res['H'] == pytest.approx(2 * b * n / (b + n))
    raw = base_new_summary([80.04, 81.06, 79.95], [70.0, 71.0, 72.0],
                           decimals=-1)
    assert raw['base'] == pytest.approx(np.mean([80.04, 81.06, 79.95]))
