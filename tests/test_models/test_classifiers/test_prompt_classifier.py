# Copyright (c) mmprompt contributors. All rights reserved.
import copy
import json

import pytest
import torch
from mmpretrain.structures import DataSample

from mmprompt.models import OpenCLIP
from mmprompt.registry import MODELS
from mmprompt.utils.checkpoint import convert_coop_state_dict

NAMES = ['cat', 'dog', 'sea_lion', 'tench', 'golden retriever']


@pytest.fixture(scope='module')
def clip():
    torch.manual_seed(0)
    return OpenCLIP('mmprompt-tiny-rn', pretrained=None)


def coop(clip, class_names=NAMES, **learner):
    learner.setdefault('n_ctx', 4)
    return MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(
                type='CoOpHead',
                prompt_learner=dict(type='CoOpPromptLearner', **learner)),
            class_names=class_names))


def cocoop(clip, **learner):
    learner.setdefault('ctx_init', 'a photo of a')
    return MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(
                type='CoCoOpHead',
                prompt_learner=dict(type='CoCoOpPromptLearner', **learner)),
            class_names=NAMES))


def batch(size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(size, 3, 64, 64, generator=generator)
    labels = torch.randint(0, len(NAMES), (size, ), generator=generator)
    samples = [DataSample().set_gt_label(int(label)) for label in labels]
    return images, samples


def clip_fingerprint(clip):
    return [t.clone() for t in clip.model.state_dict().values()]


@pytest.mark.parametrize('builder', [coop, cocoop])
def test_only_the_prompt_learner_trains_and_is_saved(clip, builder):
    model = builder(clip)
    learner = model.head.prompt_learner
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {'head.prompt_learner.ctx'}
    if builder is cocoop:
        expected |= {
            f'head.prompt_learner.meta_net.{name}'
            for name in ('linear1.weight', 'linear1.bias', 'linear2.weight',
                         'linear2.bias')
        }
    assert trainable == expected
    saved = {k for k in model.state_dict() if not k.endswith('_extra_state')}
    assert saved == expected  # no CLIP weight, no token buffer

    before_clip = clip_fingerprint(clip)
    before = {n: p.detach().clone() for n, p in learner.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    model.train()
    images, samples = batch()
    losses = model(images, samples, mode='loss')
    assert set(losses) == {'loss'} and losses['loss'].ndim == 0
    losses['loss'].backward()
    for name, param in learner.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in clip.model.parameters())
    optimizer.step()
    for name, param in learner.named_parameters():
        assert not torch.equal(param, before[name]), name
    for a, b in zip(clip_fingerprint(clip), before_clip):
        assert torch.equal(a, b)


def test_loss_is_cross_entropy_of_the_logits(clip):
    model = cocoop(clip)
    images, samples = batch()
    labels = torch.tensor([s.gt_label.item() for s in samples])
    with torch.no_grad():
        loss = model(images, samples, mode='loss')['loss']
        logits = model(images)
    torch.testing.assert_close(
        loss, torch.nn.functional.cross_entropy(logits, labels))


def test_predict_returns_data_samples(clip):
    model = coop(clip)
    model.eval()
    images, samples = batch(3)
    with torch.no_grad():
        results = model(images, samples, mode='predict')
        logits = model(images)
    assert len(results) == 3
    for row, result in zip(logits, results):
        assert result.pred_score.shape == (len(NAMES), )
        assert int(result.pred_label) == int(row.argmax())
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(images, mode='logits')


def test_coop_eval_features_are_cached_but_never_stale(clip):
    model = coop(clip)
    head = model.head
    calls = []
    original = head.text_encoder.forward

    def counting(prompts):
        calls.append(1)
        return original(prompts)

    head.text_encoder.forward = counting
    try:
        images, samples = batch()
        model.eval()
        with torch.no_grad():
            first = model(images)
            model(images[:2])
        assert len(calls) == 1  # one text pass for the whole evaluation
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        model(images, samples, mode='loss')['loss'].backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            after_step = model(images)
        assert not torch.allclose(first, after_step)
        fresh = copy.deepcopy(head.prompt_learner.ctx.detach())
        with torch.no_grad():
            head.prompt_learner.ctx.copy_(fresh)  # in-place edit, same value
            model.set_class_names(NAMES[:3])
            switched = model(images)
        assert switched.shape == (4, 3)
        torch.testing.assert_close(switched, after_step[:, :3])
    finally:
        del head.text_encoder.forward


def test_coop_eval_features_recomputed_without_the_cache(clip):
    model = coop(clip)
    model.head.cache_text_features = False
    calls = []
    original = model.head.text_encoder.forward
    model.head.text_encoder.forward = lambda p: calls.append(1) or original(p)
    images, _ = batch()
    model.eval()
    with torch.no_grad():
        first = model(images)
        second = model(images)
    assert len(calls) == 2  # once per batch, as the original
    torch.testing.assert_close(first, second)


def test_switching_class_names_changes_k_and_prompts(clip):
    model = cocoop(clip)
    images, _ = batch(2)
    with torch.no_grad():
        five = model(images)
        model.set_class_names(['zebra', 'dog'])
        two = model(images)
        model.set_class_names(['dog', 'zebra'])
        swapped = model(images)
    assert five.shape == (2, 5) and two.shape == (2, 2)
    torch.testing.assert_close(two.flip(1), swapped)
    torch.testing.assert_close(two[:, 1], five[:, 1])  # 'dog' is 'dog'
    assert model.class_names == ['dog', 'zebra']


def test_csc_refuses_other_classes(clip):
    model = coop(clip, csc=True, num_classes=len(NAMES))
    with pytest.raises(ValueError, match='class-specific'):
        model.set_class_names(NAMES[:3])
    with pytest.raises(ValueError, match='class-specific'):
        model.set_class_names(list(reversed(NAMES)))
    # A checkpoint knows which classes its contexts belong to.
    state = model.state_dict()
    other = coop(
        clip, ['a', 'b', 'c', 'd', 'e'], csc=True, num_classes=len(NAMES))
    with pytest.raises(ValueError, match='class-specific'):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match='num_classes'):
        coop(clip, csc=True)
    with pytest.raises(ValueError, match='ctx_init'):
        coop(clip, csc=True, num_classes=5, ctx_init='a photo of a')


@pytest.mark.parametrize('kwargs,match', [
    (dict(class_token_position='begin'),
     "class_token_position must be one of 'end', 'middle', 'front', "
     "got 'begin'"),
    (dict(n_ctx=0), 'n_ctx must be a positive int, got 0'),
])
def test_bad_learner_arguments(clip, kwargs, match):
    with pytest.raises(ValueError, match=match):
        coop(clip, **kwargs)


def test_bad_class_names(clip):
    model = coop(clip)
    with pytest.raises(ValueError, match='empty'):
        model.set_class_names([])
    with pytest.raises(ValueError, match='duplicate'):
        model.set_class_names(['dog', 'cat', 'Dog'])
    with pytest.raises(ValueError, match='long_name'):
        model.set_class_names(['long_name ' + 'word ' * 80])
    unset = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(
                type='CoOpHead',
                prompt_learner=dict(type='CoOpPromptLearner', n_ctx=2))))
    with pytest.raises(RuntimeError, match='ClassNamesHook'):
        unset(torch.rand(1, 3, 64, 64))


def test_fp16_mode_is_the_originals_default(golden_dir):
    path = golden_dir / 'tiny-vit' / 'openai_state_dict.pt'
    model16 = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP',
                arch='mmprompt-tiny-vit',
                pretrained=str(path),
                precision='fp16'),
            head=dict(
                type='CoCoOpHead',
                prompt_learner=dict(
                    type='CoCoOpPromptLearner', ctx_init='a photo of a')),
            class_names=NAMES))
    learner = model16.head.prompt_learner
    assert learner.ctx.dtype == torch.float16
    assert learner.meta_net.linear1.weight.dtype == torch.float16
    model32 = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP',
                arch='mmprompt-tiny-vit',
                pretrained=str(path)),
            head=dict(
                type='CoCoOpHead',
                prompt_learner=dict(
                    type='CoCoOpPromptLearner', ctx_init='a photo of a')),
            class_names=NAMES))
    model32.load_state_dict(model16.state_dict())
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        logits16, logits32 = model16(images), model32(images)
    assert logits16.dtype == torch.float32  # logits are computed in fp32
    assert torch.isfinite(logits16).all()
    torch.testing.assert_close(logits16, logits32, rtol=0, atol=5e-2)


VARIANTS = [
    'coop_end_word-init', 'coop_end_random16', 'coop_middle_random8',
    'coop_front_random8', 'coop_csc_random4', 'cocoop_word-init',
    'cocoop_random8'
]


@pytest.mark.parametrize('variant', VARIANTS)
@pytest.mark.parametrize('tower', ['vit', 'rn'])
def test_reproduces_the_originals_logits(golden_dir, tower, variant):
    """Weights, context and Meta-Net from the original's own files give the
    original's own logits (fp32) to 1e-5."""
    root = golden_dir / f'tiny-{tower}'
    inputs = torch.load(root / 'inputs.pt', weights_only=True)
    spec = json.loads((root / variant / 'options.json').read_text())
    options = dict(spec['options'])
    if spec['method'] == 'coop':
        if options.get('csc'):
            options['num_classes'] = len(inputs['classnames'])
        head = dict(
            type='CoOpHead',
            prompt_learner=dict(type='CoOpPromptLearner', **options))
    else:
        head = dict(
            type='CoCoOpHead',
            prompt_learner=dict(type='CoCoOpPromptLearner', **options))
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP',
                arch=f'mmprompt-tiny-{tower}',
                pretrained=str(root / 'openai_state_dict.pt')),
            head=head,
            class_names=inputs['classnames']))
    original = torch.load(
        root / variant / 'model.pth.tar-10', weights_only=True)
    state = convert_coop_state_dict(original)
    assert not any('token_' in key for key in state)
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert [k for k in result.missing_keys
            if not k.endswith('_extra_state')] == []
    model.eval()
    with torch.no_grad():
        logits = model.head(model.extract_feat(inputs['images']))
    expected = torch.load(root / variant / 'logits.pt', weights_only=True)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    # The original's prefix/suffix buffers equal ours for the same names.
    learner = model.head.prompt_learner
    sd = original['state_dict']
    tokens = learner.class_tokens()
    torch.testing.assert_close(tokens.embeddings[:, :1], sd['token_prefix'])
    torch.testing.assert_close(tokens.suffix, sd['token_suffix'])


def test_converter_round_trip_keeps_learned_tensors(golden_dir):
    original = torch.load(
        golden_dir / 'tiny-rn' / 'cocoop_word-init' / 'model.pth.tar-10',
        weights_only=True)
    converted = convert_coop_state_dict(original)
    assert set(converted) == {
        'head.prompt_learner.ctx',
        'head.prompt_learner.meta_net.linear1.weight',
        'head.prompt_learner.meta_net.linear1.bias',
        'head.prompt_learner.meta_net.linear2.weight',
        'head.prompt_learner.meta_net.linear2.bias'
    }
    for key, value in converted.items():
        short = key[len('head.prompt_learner.'):]
        assert torch.equal(value, original['state_dict'][short])
    with pytest.raises(ValueError, match="expected a 'state_dict'"):
        convert_coop_state_dict({'state_dict': {'weight': torch.ones(1)}})


@pytest.mark.parametrize('builder', [coop, cocoop])
def test_autocast_keeps_fp32_parameters_and_logits(clip, builder):
    """What --amp does (bf16 autocast on a CPU): the learned parameters and
    their gradients stay fp32, the logits are computed in fp32."""
    model = builder(clip)
    images, samples = batch(2)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = model(images)
        loss = model(images, samples, mode='loss')['loss']
    assert logits.dtype == torch.float32
    loss.backward()
    for param in model.head.prompt_learner.parameters():
        assert param.dtype == torch.float32
        assert param.grad.dtype == torch.float32
        assert torch.isfinite(param.grad).all()
    with torch.no_grad():
        reference = model(images)
    torch.testing.assert_close(logits, reference, rtol=0.05, atol=0.3)
