# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP-Adapter against the original's ``CustomCLIP.forward``
(``golden/adapters/clip_adapter``): test logits, training logits, loss and
the gradients of both adapter weights, with the text features of the
original's template from the tiny CLIP; any width; loading a checkpoint."""
import pytest
import torch
import torch.nn.functional as F

from mmprompt.models import OpenCLIP
from mmprompt.models.adapters import CLIPAdapter, FeatureSet
from mmprompt.models.heads import TextFeatureBank
from mmprompt.registry import MODELS

TOL = 1e-5  # relative error, max |a - b| / max |b|


def rel_err(got, expected) -> float:
    got, expected = got.detach().double(), expected.detach().double()
    return float((got - expected).abs().max() / expected.abs().max())


@pytest.fixture(scope='module')
def golden(golden_dir):
    folder = golden_dir / 'adapters'
    out = torch.load(folder / 'clip_adapter' / 'outputs.pt', weights_only=True)
    data = torch.load(folder / 'data.pt', weights_only=True)
    clip = OpenCLIP(
        'mmprompt-tiny-vit',
        pretrained=str(golden_dir / 'tiny-vit' / 'openai_state_dict.pt'))
    # the original's CoOp template of its dataset, '_' read as a space
    text = TextFeatureBank(clip, out['dataset'])(data['classnames'])
    assert TextFeatureBank(clip, out['dataset']).templates == [out['template']]
    return dict(out=out, data=data, clip=clip, text=text)


def build(golden, **options):
    adapter = MODELS.build(dict(type='CLIPAdapter', **options))
    adapter.set_logit_scale(golden['clip'].logit_scale)
    return adapter


def test_clip_adapter_reproduces_the_original(golden):
    out, data = golden['out'], golden['data']
    adapter = build(golden)
    assert adapter.ratio == out['ratio'] == 0.2
    assert adapter.reduction == out['reduction'] == 4
    train = FeatureSet(data['features']['train'][None],
                       data['labels']['train'], 'train')
    adapter.fit(train, None, golden['text'])  # width from the features
    adapter.load_state_dict(
        dict(out['adapter_state_dict'], logit_scale=out['logit_scale']))
    test_logits = adapter(data['features']['test'], golden['text'])
    assert rel_err(test_logits, out['test_logits']) < TOL

    idx = out['train_idx']
    losses = adapter.loss(data['features']['train'][idx],
                          data['labels']['train'][idx], golden['text'])
    logits = adapter(data['features']['train'][idx], golden['text'])
    assert rel_err(logits, out['train_logits']) < TOL
    assert rel_err(losses['loss'], out['train_loss']) < TOL
    losses['loss'].backward()
    for name, param in adapter.named_parameters():
        assert rel_err(param.grad, out['train_grads'][name]) < TOL, name


def test_clip_adapter_logit_scale_is_the_clips(golden):
    """exp(logit_scale) of the model (14.2985 for the tiny CLIP), not 100
    as Tip-Adapter's; a given scale is kept."""
    adapter = build(golden, in_channels=64)
    assert adapter.logit_scale.exp().item() == pytest.approx(14.2985, 1e-4)
    fixed = CLIPAdapter(64, logit_scale=4.6052)
    fixed.set_logit_scale(golden['clip'].logit_scale)
    assert fixed.logit_scale.item() == pytest.approx(4.6052)
    with pytest.raises(RuntimeError, match='logit_scale is not set'):
        CLIPAdapter(64)(torch.randn(2, 64), golden['text'])


@pytest.mark.parametrize('width', [48, 1024])
def test_clip_adapter_any_width(width):
    """The original hard-codes 1024; here the width is the features'."""
    torch.manual_seed(0)
    adapter = CLIPAdapter(reduction=4, logit_scale=0.)
    params = list(adapter.parameters())
    train = FeatureSet(torch.randn(1, 6, width), torch.arange(6) % 3, 'train')
    adapter.fit(train, None, torch.randn(3, width))
    assert adapter.fc[0].weight.shape == (width // 4, width)
    assert adapter.fc[2].weight.shape == (width, width // 4)
    # new parameters (AdapterTrainLoop points the optimizer at them)
    assert all(a is not b for a, b in zip(params, adapter.parameters()))
    assert adapter(torch.randn(2, width), torch.randn(3,
                                                      width)).shape == (2, 3)
    # a checkpoint gives an unbuilt adapter its width
    loaded = CLIPAdapter()
    loaded.load_state_dict(adapter.state_dict())
    assert loaded.in_channels == width
    x, t = torch.randn(2, width), torch.randn(3, width)
    torch.testing.assert_close(loaded(x, t), adapter(x, t))


def test_clip_adapter_residual_and_errors():
    torch.manual_seed(0)
    f = torch.randn(4, 16)
    adapter = CLIPAdapter(16, ratio=0.2)
    expected = 0.2 * F.relu(
        F.relu(f @ adapter.fc[0].weight.t())
        @ adapter.fc[2].weight.t()) + 0.8 * f
    torch.testing.assert_close(adapter.adapt(f), expected)
    torch.testing.assert_close(CLIPAdapter(16, ratio=0.).adapt(f), f)
    with pytest.raises(ValueError, match='ratio must be in'):
        CLIPAdapter(16, ratio=1.5)
    with pytest.raises(ValueError, match='reduction must be a positive'):
        CLIPAdapter(16, reduction=0)
    with pytest.raises(ValueError, match='leaves no hidden unit'):
        CLIPAdapter(2, reduction=4)
    with pytest.raises(
            ValueError,
            match='width 8 given to a CLIPAdapter'
            ' of in_channels=16'):
        adapter.adapt(torch.randn(2, 8))
    with pytest.raises(RuntimeError, match='no weights yet'):
        CLIPAdapter().adapt(f)


def test_clip_adapter_in_the_classifier(golden, golden_dir):
    """AdapterClassifier gives the adapter its CLIP's logit scale and the
    original's text features (the dataset's CoOp template): the original's
    logits from cached features."""
    out, data = golden['out'], golden['data']
    model = MODELS.build(
        dict(
            type='AdapterClassifier',
            clip=dict(
                type='OpenCLIP',
                arch='mmprompt-tiny-vit',
                pretrained=str(golden_dir / 'tiny-vit' /
                               'openai_state_dict.pt')),
            text=dict(templates=out['dataset']),
            adapter=dict(type='CLIPAdapter'),
            class_names=data['classnames']))
    model.fit(
        FeatureSet(data['features']['train'][None], data['labels']['train'],
                   'train'))
    model.adapter.load_state_dict(out['adapter_state_dict'], strict=False)
    assert rel_err(model(data['features']['test']), out['test_logits']) < TOL
    assert set(model.adapter.state_dict()) == {
        'fc.0.weight', 'fc.2.weight', 'logit_scale'
    }
