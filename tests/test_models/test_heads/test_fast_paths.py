# Copyright (c) mmprompt contributors. All rights reserved.
"""The shortcuts (truncation, prefix cache, chunking, checkpointing) change
no logit and no gradient: compared with the straightforward computation,
one open_clip ``encode_text`` call per image on full 77-token prompts."""
import coop_reference as reference
import pytest
import torch
import torch.nn.functional as F

from mmprompt.models import OpenCLIP
from mmprompt.registry import MODELS

NAMES = [
    'dog', 'sea_lion', '2012 AM General Hummer SUV', 'tench',
    'golden retriever'
]


@pytest.fixture(
    scope='module', params=['mmprompt-tiny-vit', 'mmprompt-tiny-rn'])
def clip(request):
    torch.manual_seed(0)
    return OpenCLIP(request.param, pretrained=None)


def images_for(clip, batch=3):
    size = 32 if 'vit' in clip.arch else 64
    return torch.rand(
        batch, 3, size, size, generator=torch.Generator().manual_seed(5))


SETTINGS = [
    dict(prefix_cache=True),
    dict(prefix_cache=False),
    dict(prefix_cache=True, text_chunk_size=4),
    dict(prefix_cache=False, text_chunk_size=3, grad_checkpointing=True),
    dict(prefix_cache=True, text_chunk_size=2, grad_checkpointing=True),
    # CPU calls of at most ~20 text positions: chunks that split runs of
    # equal-length prompts and hold prompts of several lengths
    dict(prefix_cache=True, cpu_text_rows=20),
]


def build(clip, head, setting):
    setting = dict(setting)
    rows = setting.pop('cpu_text_rows', None)
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(head, **setting),
            class_names=NAMES))
    if rows is not None:
        model.head.CPU_TEXT_ROWS = rows
    return model


def straightforward_cocoop(clip, learner, images):
    with torch.no_grad():
        f = F.normalize(clip.encode_image(images), dim=-1)
    return reference.cocoop_logits(clip.model, clip.tokenizer, f, NAMES,
                                   learner.ctx, learner.meta_net)


@pytest.mark.parametrize('setting', SETTINGS)
def test_cocoop_logits_and_gradients(clip, setting):
    torch.manual_seed(1)
    model = build(
        clip,
        dict(
            type='CoCoOpHead',
            prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=6)), setting)
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


@pytest.mark.parametrize('setting', SETTINGS)
@pytest.mark.parametrize('position', ['end', 'front'])
def test_coop_logits_and_gradients(clip, setting, position):
    torch.manual_seed(2)
    model = build(
        clip,
        dict(
            type='CoOpHead',
            prompt_learner=dict(
                type='CoOpPromptLearner',
                n_ctx=8,
                class_token_position=position)), setting)
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


def test_prefix_cache_is_used_where_it_applies(clip):
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(
                type='CoCoOpHead',
                prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=4)),
            class_names=NAMES))
    calls = []
    original = clip.encode_prefix
    object.__setattr__(
        clip, 'encode_prefix',
        lambda prefix: calls.append(prefix.shape) or original(prefix))
    try:
        with torch.no_grad():
            model(images_for(clip, batch=2))
    finally:
        object.__delattr__(clip, 'encode_prefix')
    assert calls == [torch.Size([2, 5, 64])]  # one prefix per image


def test_bad_chunk_size(clip):
    with pytest.raises(ValueError, match='text_chunk_size'):
        MODELS.build(
            dict(
                type='CoCoOpHead',
                clip=clip,
                text_chunk_size=0,
                prompt_learner=dict(type='CoCoOpPromptLearner')))


def test_cpu_chunks_split_and_order_the_classes(clip):
    """The packed path's plan: classes sorted by prompt length, cut into
    chunks of at most CPU_TEXT_ROWS positions (or one class), and put back
    in label order."""
    model = build(
        clip,
        dict(
            type='CoCoOpHead',
            prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=4)),
        dict(cpu_text_rows=12))
    head, learner = model.head, model.head.prompt_learner
    lengths = (learner.eot_index - 4).tolist()  # positions after SOT + ctx
    chunks, inverse = head._suffix_plan(learner, 2, 5)
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
    head.CPU_TEXT_ROWS = 10**6
    assert len(head._suffix_plan(learner, 2, 5)[0]) == 1
