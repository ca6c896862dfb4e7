# Copyright (c) mmprompt contributors. All rights reserved.
"""The text encoders' shortcuts (EOT cut, prefix cache, packing, chunking,
checkpointing) change no logit and no gradient: compared with the
straightforward computation, one open_clip ``encode_text`` call per image on
full 77-token prompts (``coop_reference``)."""
import warnings

import coop_reference as reference
import pytest
import torch
import torch.nn.functional as F

from mmprompt.models import OpenCLIP, PlainTextEncoder, PrefixCachedTextEncoder
from mmprompt.registry import MODELS

NAMES = [
    'dog', 'sea_lion', '2012 AM General Hummer SUV', 'tench',
    'golden retriever'
]


@pytest.fixture(
    scope='module',
    params=['mmprompt-tiny-vit', 'mmprompt-tiny-rn', 'mmprompt-tiny-vit-deep'])
def clip(request):
    torch.manual_seed(0)
    return OpenCLIP(request.param, pretrained=None)


def images_for(clip, batch=3):
    size = 64 if 'rn' in clip.arch else 32
    return torch.rand(
        batch, 3, size, size, generator=torch.Generator().manual_seed(5))


ENCODERS = [
    dict(type='PrefixCachedTextEncoder'),
    dict(type='PlainTextEncoder'),
    dict(type='PrefixCachedTextEncoder', text_chunk_size=4),
    dict(type='PlainTextEncoder', text_chunk_size=3, grad_checkpointing=True),
    dict(
        type='PrefixCachedTextEncoder',
        text_chunk_size=2,
        grad_checkpointing=True),
    # CPU calls of at most ~20 text positions: chunks that split runs of
    # equal-length prompts and hold prompts of several lengths
    dict(type='PrefixCachedTextEncoder', cpu_text_rows=20),
    # the original's computation (the benchmark's baseline): all 77
    # positions, K prompts per call
    dict(type='PlainTextEncoder', cut_after_eot=False, text_chunk_size=5),
]


def build(clip, head, text_encoder):
    return MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(head, text_encoder=text_encoder),
            class_names=NAMES))


def straightforward_cocoop(clip, learner, images):
    with torch.no_grad():
        f = F.normalize(clip.encode_image(images), dim=-1)
    return reference.cocoop_logits(clip.model, clip.tokenizer, f, NAMES,
                                   learner.ctx, learner.meta_net)


@pytest.mark.parametrize('encoder', ENCODERS)
def test_cocoop_logits_and_gradients(clip, encoder):
    torch.manual_seed(1)
    model = build(
        clip,
        dict(
            type='CoCoOpHead',
            prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=6)), encoder)
    learner = model.head.prompt_learner
    with torch.no_grad():
        for p in learner.meta_net.parameters():
            p.normal_(0, 0.3)
    images = images_for(clip)
    labels = torch.tensor([0, 3, 1])
    model.train()
    ours = model(images)
    F.cross_entropy(ours, labels).backward()
    ours_grads = [p.grad.clone() for p in learner.parameters()]
    learner.zero_grad()
    theirs = straightforward_cocoop(clip, learner, images)
    F.cross_entropy(theirs, labels).backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    for mine, ref in zip(ours_grads, [p.grad for p in learner.parameters()]):
        torch.testing.assert_close(
            mine, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


@pytest.mark.parametrize('encoder', ENCODERS)
@pytest.mark.parametrize('position', ['end', 'front'])
def test_coop_logits_and_gradients(clip, encoder, position):
    torch.manual_seed(2)
    model = build(
        clip,
        dict(
            type='CoOpHead',
            prompt_learner=dict(
                type='CoOpPromptLearner',
                n_ctx=8,
                class_token_position=position)), encoder)
    learner = model.head.prompt_learner
    images = images_for(clip)
    labels = torch.tensor([4, 0, 2])
    ours = model(images)
    F.cross_entropy(ours, labels).backward()
    ours_grad = learner.ctx.grad.clone()
    learner.ctx.grad = None
    with torch.no_grad():
        f = F.normalize(clip.encode_image(images), dim=-1)
    theirs = reference.coop_logits(clip.model, clip.tokenizer, f, NAMES,
                                   learner.ctx, position)
    F.cross_entropy(theirs, labels).backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        ours_grad,
        learner.ctx.grad,
        rtol=1e-5,
        atol=1e-5 * learner.ctx.grad.abs().max().item())


def coop_prompts(clip, n_ctx=4, **kwargs):
    learner = MODELS.build(
        dict(type='CoOpPromptLearner', n_ctx=n_ctx, **kwargs),
        default_args=dict(clip=clip))
    learner.set_class_names(NAMES)
    return learner


@pytest.mark.parametrize('encoder', ENCODERS)
def test_deep_text_rows_stay_exact(clip, encoder):
    """Per-layer rows at positions 1..n (before every class token) are
    written into the cached prefix: features and gradients equal the
    straightforward loop over open_clip's blocks on full prompts."""
    learner = coop_prompts(clip, n_ctx=4)
    generator = torch.Generator().manual_seed(3)
    blocks = len(clip.text_blocks)
    rows = {
        i: torch.randn(3, clip.width, generator=generator).requires_grad_()
        for i in range(1, blocks)
    }
    prompts = learner()
    prompts.text_rows = rows
    text_encoder = MODELS.build(encoder, default_args=dict(clip=clip))
    if isinstance(text_encoder, PrefixCachedTextEncoder):
        assert text_encoder.applies(prompts) == text_encoder.tower_supported
    ours = text_encoder(prompts)[0]
    theirs = reference.deep_text_features(clip.model, clip.tokenizer, NAMES,
                                          learner.ctx, rows)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    inputs = [learner.ctx] + list(rows.values())
    weights = torch.randn(theirs.shape, generator=generator)
    grads = torch.autograd.grad((ours * weights).sum(), inputs)
    expected = torch.autograd.grad((theirs * weights).sum(), inputs)
    for mine, ref in zip(grads, expected):
        assert ref.abs().sum() > 0
        torch.testing.assert_close(
            mine, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_prefix_cache_is_used_where_it_applies(clip):
    encoder = PrefixCachedTextEncoder(clip)
    calls = []
    original = encoder.encode_prefix
    encoder.encode_prefix = lambda prefix, rows, *rounding: calls.append(
        prefix.shape) or original(prefix, rows)
    learner = MODELS.build(
        dict(type='CoCoOpPromptLearner', n_ctx=4),
        default_args=dict(clip=clip))
    learner.set_class_names(NAMES)
    with torch.no_grad():
        encoder(learner(torch.randn(2, clip.embed_dim)))
    assert calls == [torch.Size([2, 5, clip.width])]  # one prefix per image
    # no shared prefix: a context per class, the class name first or in the
    # middle, rows reaching past the context
    for kwargs in (dict(csc=True, num_classes=len(NAMES)),
                   dict(class_token_position='front'),
                   dict(class_token_position='middle')):
        assert not encoder.applies(coop_prompts(clip, **kwargs)())
    prompts = coop_prompts(clip, n_ctx=2)()
    prompts.text_rows = {1: torch.zeros(3, clip.width)}
    assert not encoder.applies(prompts)
    with torch.no_grad():
        torch.testing.assert_close(
            encoder(prompts),
            PlainTextEncoder(clip)(prompts))
    assert len(calls) == 1


def test_bad_settings(clip):
    with pytest.raises(ValueError, match='text_chunk_size'):
        PlainTextEncoder(clip, text_chunk_size=0)
    with pytest.raises(ValueError, match='cpu_text_rows'):
        PrefixCachedTextEncoder(clip, cpu_text_rows=0)
    with pytest.raises(ValueError, match='needs the frozen CLIP'):
        PlainTextEncoder()


def test_cpu_chunks_split_and_order_the_classes(clip):
    """The packed path's plan: classes sorted by prompt length, cut into
    chunks of at most cpu_text_rows positions (or one class), and put back
    in label order."""
    encoder = PrefixCachedTextEncoder(clip, cpu_text_rows=12)
    tokens = coop_prompts(clip, n_ctx=4).class_tokens()
    lengths = (tokens.eot - 4).tolist()  # positions after SOT + ctx
    chunks, inverse = encoder._suffix_plan(tokens, 2, 5)
    packed = [c for class_index, _, _ in chunks for c in class_index.tolist()]
    order = list(dict.fromkeys(packed))
    assert sorted(order) == list(range(len(NAMES)))
    assert [lengths[c] for c in order] == sorted(lengths)
    for class_index, position, chunk_lengths in chunks:
        assert len(class_index) == len(position) == sum(chunk_lengths)
        assert 2 * sum(chunk_lengths) <= 12 or len(chunk_lengths) == 1
    assert torch.equal(torch.tensor(order)[inverse], torch.arange(len(NAMES)))
    assert len(chunks) > 1
    # a changed budget is a new plan
    encoder.cpu_text_rows = 10**6
    assert len(encoder._suffix_plan(tokens, 2, 5)[0]) == 1


@pytest.mark.parametrize('old, expected', [
    (dict(prefix_cache=False), dict(type='PlainTextEncoder')),
    (dict(prefix_cache=True, text_chunk_size=7, grad_checkpointing=True),
     dict(
         type='PrefixCachedTextEncoder',
         text_chunk_size=7,
         grad_checkpointing=True)),
])
def test_head_keys_of_mmprompt_0_1_still_work(clip, old, expected):
    """Configs written for mmprompt 0.1 set the speed options on the head:
    they still build, with a FutureWarning, into the same text encoder."""
    head = dict(
        type='CoCoOpHead',
        clip=clip,
        prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=4))
    with pytest.warns(FutureWarning, match='deprecated.*text_encoder'):
        encoder = MODELS.build(dict(head, **old)).text_encoder
    expected = dict(expected)
    assert type(encoder).__name__ == expected.pop('type')
    for key, value in expected.items():
        assert getattr(encoder, key) == value
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        MODELS.build(head)  # the new form warns nothing
    with pytest.raises(TypeError, match="unexpected arguments \\['n_ctx'\\]"):
        MODELS.build(dict(head, n_ctx=4))


def test_partial_text_encoder_config_keeps_the_default_type(clip):
    """``--cfg-options model.head.text_encoder.text_chunk_size=8`` on a config
    that sets no text encoder gives a dict without a type."""
    head = MODELS.build(
        dict(
            type='CoCoOpHead',
            clip=clip,
            prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=4),
            text_encoder=dict(text_chunk_size=8)))
    assert type(head.text_encoder) is PrefixCachedTextEncoder
    assert head.text_encoder.text_chunk_size == 8


def test_rows_for_a_missing_block_are_refused(clip):
    prompts = coop_prompts(clip, n_ctx=4)()
    blocks = len(clip.text_blocks)
    prompts.text_rows = {blocks: torch.zeros(2, clip.width)}
    for encoder in (PrefixCachedTextEncoder(clip), PlainTextEncoder(clip)):
        with pytest.raises(ValueError, match=f'blocks 0..{blocks - 1}'):
            encoder(prompts)
