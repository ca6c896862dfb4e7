# Copyright (c) mmprompt contributors. All rights reserved.
"""The CoOp paper's linear probe against ``lpclip/linear_probe.py`` itself
run on the golden features (``golden/adapters/lpclip``): its numpy
few-shot draw, the coarse C grid's val accuracies, every binary-search step
(both C, which side won, the C kept), the final C, test predictions and
probabilities, for 1/2/4/8/16 shots and 3 seeds; the protocol guard; the
error without scikit-learn."""
import sys

import pytest
import torch
from golden_testing import golden_required

from mmprompt.models.adapters import (LPCLIP_VAL_SHOTS, FeatureSet,
                                      LogisticRegressionProbe,
                                      lpclip_fewshot_indices)

sklearn = pytest.importorskip('sklearn')


@pytest.fixture(scope='module')
def golden(golden_dir):
    folder = golden_dir / 'adapters'
    runs = torch.load(folder / 'lpclip' / 'runs.pt', weights_only=True)
    data = torch.load(folder / 'data.pt', weights_only=True)
    return dict(runs=runs, data=data)


def golden_sklearn(golden):
    """The search path depends on where sklearn's fits stop: the golden
    holds sklearn 1.9.1's (requirements/tests.txt pins it)."""
    version = golden['runs']['sklearn_version']
    if sklearn.__version__ != version:
        message = (f'the lpclip golden was made with scikit-learn {version},'
                   f' {sklearn.__version__} is installed: its C path may '
                   'differ (configs/lpclip/README.md)')
        if golden_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def test_lpclip_fewshot_draw(golden):
    """numpy's draw of the original: train then val shots per class."""
    labels = golden['data']['labels']
    for run in golden['runs']['runs']:
        train = lpclip_fewshot_indices(labels['train'], run['shot'],
                                       run['seed'])
        val = lpclip_fewshot_indices(labels['val'],
                                     LPCLIP_VAL_SHOTS[run['shot']])
        assert train.tolist() == run['train_idx'].tolist()
        assert val.tolist() == run['val_idx'].tolist()


@pytest.mark.parametrize('run_index', range(15))
def test_lpclip_search_reproduces_the_original(golden, run_index):
    golden_sklearn(golden)
    run = golden['runs']['runs'][run_index]
    data = golden['data']
    features, labels = data['features'], data['labels']
    probe = LogisticRegressionProbe()
    record = probe.fit_features(features['train'][run['train_idx']],
                                labels['train'][run['train_idx']],
                                features['val'][run['val_idx']],
                                labels['val'][run['val_idx']])
    assert record['split'] == 'val'
    # the coarse grid: C, each fit's val predictions (as accuracy)
    for (c, acc, _), fit in zip(record['coarse'], run['coarse']):
        expected = 100.0 * float(
            (fit['val_pred'] == labels['val'][run['val_idx']]).double().mean())
        assert c == fit['C'] and acc == pytest.approx(expected, abs=1e-9)
    # every step of the one-sided binary search
    assert len(record['steps']) == len(run['steps']) == 8
    for step, expected in zip(record['steps'], run['steps']):
        assert step['C_left'] == pytest.approx(expected['C_left'], rel=1e-12)
        assert step['C_right'] == pytest.approx(expected['C_right'], rel=1e-12)
        assert step['chosen'] == expected['chosen']
        assert step['C'] == pytest.approx(expected['C_final'], rel=1e-12)
    assert record['C'] == pytest.approx(run['final']['C'], rel=1e-12)
    assert probe.C.item() == pytest.approx(run['final']['C'], rel=1e-12)
    # the kept classifier: test predictions, accuracy, probabilities
    logits = probe(features['test'])
    assert logits.argmax(-1).tolist() == run['steps'][-1]['test_pred'].tolist()
    accuracy = 100.0 * float(
        (logits.argmax(-1) == labels['test']).double().mean())
    assert accuracy == pytest.approx(run['final']['test_acc'], abs=1e-9)
    # within the solver's tolerance (its stopping rule: max |grad| <= 1e-4)
    torch.testing.assert_close(
        logits.softmax(-1), run['final']['test_proba'], rtol=0, atol=1e-4)


def test_lpclip_fit_protocol_and_record():
    """fit() through feature sets: C chosen on the val split and said so;
    the test split refused; the state is the checkpoint."""
    torch.manual_seed(0)
    feats = torch.randn(1, 24, 8) + torch.eye(8)[:3].repeat(8, 1)[None] * 3
    labels = torch.arange(3).repeat(8)
    train = FeatureSet(feats, labels, 'train')
    probe = LogisticRegressionProbe(search_steps=2)
    chosen = probe.fit(train, FeatureSet(feats, labels, 'val'),
                       torch.randn(3, 8))
    assert chosen['C']['split'] == 'val'
    assert chosen['C']['value'] == probe.C.item()
    assert probe.search_record['split'] == 'val'
    assert len(probe.search_record['coarse']) == 7
    assert len(probe.search_record['steps']) == 2
    with pytest.raises(ValueError, match='test split'):
        probe.fit(train, FeatureSet(feats, labels, 'test'), None)
    with pytest.raises(ValueError, match='there are none'):
        probe.fit(train, None, None)
    # C on the training features, when asked: said so
    on_train = LogisticRegressionProbe(search_steps=1, search_split='train')
    chosen = on_train.fit(train, FeatureSet(feats[:, :3], labels[:3], 'val'),
                          None)
    assert chosen['C']['split'] == 'train'
    with pytest.raises(ValueError, match='C search'):
        LogisticRegressionProbe(search_split='test')
    loaded = LogisticRegressionProbe()
    loaded.load_state_dict(probe.state_dict())
    torch.testing.assert_close(loaded(feats[0]), probe(feats[0]))
    with pytest.raises(ValueError, match='scores its training classes'):
        probe(feats[0], torch.randn(4, 8))
    with pytest.raises(RuntimeError, match='not fitted'):
        LogisticRegressionProbe()(feats[0])


def test_lpclip_two_classes():
    """sklearn's binary model (one row) becomes two rows of logits whose
    argmax and softmax are sklearn's."""
    torch.manual_seed(0)
    x = torch.randn(12, 5, dtype=torch.float64)
    y = torch.arange(2).repeat(6)
    x[y == 1] += 1
    probe = LogisticRegressionProbe(search_steps=1)
    probe.fit_features(x, y, x, y)
    model = sklearn.linear_model.LogisticRegression(
        C=probe.C.item(), max_iter=1000).fit(x.numpy(), y.numpy())
    assert probe(x).argmax(-1).tolist() == model.predict(x.numpy()).tolist()
    torch.testing.assert_close(
        probe(x).softmax(-1), torch.from_numpy(model.predict_proba(x.numpy())))


def test_lpclip_without_sklearn(monkeypatch):
    """scikit-learn is optional: its absence is an error naming the package
    and the install command, raised before any fit."""
    for name in [m for m in sys.modules if m.split('.')[0] == 'sklearn']:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, 'sklearn', None)
    x, y = torch.randn(6, 4), torch.arange(2).repeat(3)
    with pytest.raises(
            ImportError,
            match=r'needs scikit-learn.*pip install '
            r'"mmprompt\[lpclip\]"'):
        LogisticRegressionProbe().fit_features(x, y, x, y)
    # building and loading a fitted probe need no sklearn
    assert LogisticRegressionProbe().num_classes is None


def test_lpclip_bad_arguments():
    with pytest.raises(ValueError, match='search_steps must be an int'):
        LogisticRegressionProbe(search_steps=-1)
    with pytest.raises(ValueError, match='coarse_c must be a non-empty'):
        LogisticRegressionProbe(coarse_c=[1.0, 0.0])
    with pytest.raises(ValueError, match='shots=5'):
        lpclip_fewshot_indices([0, 0, 1, 1], 5, seed=1)
    x, y = torch.randn(6, 4), torch.arange(2).repeat(3)
    with pytest.raises(ValueError, match=r'val features must be \(N, 4\)'):
        LogisticRegressionProbe().fit_features(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match=r'classes \[2\] have no training'):
        LogisticRegressionProbe().fit_features(x, y, x, y, num_classes=3)
