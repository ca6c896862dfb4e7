# Copyright (c) mmprompt contributors. All rights reserved.
"""LP++ against the original's own run (``golden/adapters/lpp``): its step
sizes and initial α, the loss and validation accuracy of all 300 epochs,
the selected epoch, the test logits there and the final state."""
import pytest
import torch
import torch.nn.functional as F

from mmprompt.models.adapters import FeatureSet, LPPlusPlus
from mmprompt.registry import MODELS

TOL = 1e-5  # relative error, max |a - b| / max |b|


def rel_err(got, expected) -> float:
    got = torch.as_tensor(got).detach().double()
    expected = torch.as_tensor(expected).detach().double()
    return float((got - expected).abs().max() / expected.abs().max())


@pytest.fixture(scope='module')
def golden(golden_dir):
    folder = golden_dir / 'adapters'
    out = torch.load(folder / 'lpp' / 'outputs.pt', weights_only=True)
    data = torch.load(folder / 'data.pt', weights_only=True)
    text = torch.load(folder / 'text.pt', weights_only=True)
    return dict(
        out=out,
        text=text['W_imagenet7'].t().contiguous(),  # (K, D)
        val=(data['features']['val'][out['val_idx']],
             data['labels']['val'][out['val_idx']]),
        test=data['tip_normalized']['test'])


def fit(golden, **options):
    out = golden['out']
    lpp = MODELS.build(dict(type='LPPlusPlus', **options))
    torch.manual_seed(1)  # the original's seed before its nn.Linear
    history = lpp.fit_features(out['train_features'], out['train_labels'],
                               golden['text'], *golden['val'])
    return lpp, history


def test_lpp_reproduces_the_original(golden):
    out = golden['out']
    lpp, history = fit(golden)
    # step sizes and α from the data, as the original computes them
    assert rel_err(history['lr_w'], out['lr_w']) < TOL
    assert rel_err(history['lr_alpha'], out['lr_alpha']) < TOL
    assert rel_err(history['alpha_init'], out['alpha_init']) < TOL
    # all 300 epochs: the loss (before each step) and the val accuracy
    assert rel_err(history['loss'], out['loss_per_epoch']) < TOL
    assert history['accuracy'] == pytest.approx(
        out['val_acc_per_epoch'].tolist(), abs=1e-9)
    # the LAST best val epoch is kept, with its state and test logits
    assert history['selection'] == dict(
        epoch=out['best_epoch'], accuracy=pytest.approx(out['best_val_acc']))
    epoch = out['best_epoch'] + 1  # the state after that epoch's update
    assert rel_err(lpp.weight, out['weight_per_epoch'][epoch]) < TOL
    assert rel_err(lpp.bias, out['bias_per_epoch'][epoch]) < TOL
    assert rel_err(lpp.alpha, out['alpha_per_epoch'][epoch]) < TOL
    logits = lpp(golden['test'], golden['text'])
    assert rel_err(logits, out['test_logits']) < TOL


def test_lpp_last_epoch_and_accumulated_alpha_gradient(golden):
    """Without a selection split the last epoch is kept: the original's
    final W, b and α, which α's never-zeroed gradient shapes (from epoch
    10 on); ``alpha_grad='current'`` departs from it."""
    out = golden['out']
    lpp = LPPlusPlus()
    torch.manual_seed(1)
    history = lpp.fit_features(out['train_features'], out['train_labels'],
                               golden['text'])
    assert history['selection'] == dict(epoch=299, accuracy=None)
    assert rel_err(lpp.weight, out['weight']) < TOL
    assert rel_err(lpp.bias, out['bias']) < TOL
    assert rel_err(lpp.alpha, out['alpha']) < TOL
    # the initial bias is nn.Linear's draw under the same seed
    current = LPPlusPlus(alpha_grad='current')
    torch.manual_seed(1)
    current.fit_features(out['train_features'], out['train_labels'],
                         golden['text'])
    assert rel_err(current.alpha, out['alpha']) > 1e-2


def test_lpp_fit_through_feature_sets(golden):
    """The adapter interface: the first view of the training set, the epoch
    chosen on the val split and said so; the test split refused."""
    out = golden['out']
    lpp = LPPlusPlus()
    views = torch.stack([out['train_features'], out['train_features'] * 2])
    train = FeatureSet(views, out['train_labels'], 'train')
    torch.manual_seed(1)
    chosen = lpp.fit(
        train, FeatureSet(golden['val'][0][None], golden['val'][1], 'val'),
        golden['text'])
    assert chosen['epoch'] == dict(value=out['best_epoch'], split='val')
    assert rel_err(lpp(golden['test'], golden['text']),
                   out['test_logits']) < TOL
    state = lpp.state_dict()
    assert set(state) == {'weight', 'bias', 'alpha'}
    loaded = LPPlusPlus()
    loaded.load_state_dict(state)
    torch.testing.assert_close(
        loaded(golden['test'], golden['text']),
        lpp(golden['test'], golden['text']))
    with pytest.raises(ValueError, match='test split'):
        lpp.fit(train,
                FeatureSet(golden['val'][0][None], golden['val'][1], 'test'),
                golden['text'])


def test_lpp_any_width_and_bad_input():
    torch.manual_seed(0)
    text = F.normalize(torch.randn(3, 40), dim=-1)
    feats, labels = torch.randn(9, 40), torch.arange(3).repeat(3)
    lpp = LPPlusPlus(epochs=5)
    lpp.fit_features(feats, labels, text, feats, labels)
    assert lpp.weight.shape == (3, 40) and lpp.alpha.shape == (1, 3)
    with pytest.raises(ValueError, match='scores its training classes'):
        lpp(feats, text[:2])
    with pytest.raises(RuntimeError, match='not fitted'):
        LPPlusPlus()(feats, text)
    with pytest.raises(ValueError, match=r'classes \[2\] have no training'):
        lpp.fit_features(feats[:6], torch.tensor([0, 1] * 3), text)
    with pytest.raises(ValueError, match=r'train features must be \(N, 40\)'):
        lpp.fit_features(feats[:, :8], labels, text)
    with pytest.raises(ValueError, match='alpha_grad must be one of'):
        LPPlusPlus(alpha_grad='zeroed')
    with pytest.raises(ValueError, match='epochs must be a positive int'):
        LPPlusPlus(epochs=0)
