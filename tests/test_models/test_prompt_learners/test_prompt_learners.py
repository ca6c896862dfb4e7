# Copyright (c) mmprompt contributors. All rights reserved.
"""Each learner's ``forward`` is its method's equation: the prompts it
returns, materialised, equal prompts written independently as text with a
placeholder word per context vector, tokenized by open_clip, and the
placeholders' embeddings replaced by the context the paper prescribes.

Dropping a term of an equation (the context, CoCoOp's Meta-Net shift, the
class-token position, the class-specific contexts) fails these tests."""
import logging

import coop_reference as reference
import pytest
import torch

from mmprompt.models import (ClassTokens, CoCoOpPromptLearner,
                             CoOpPromptLearner, OpenCLIP, Prompts)

NAMES = ['dog', 'sea_lion', '2012 AM General Hummer SUV', 'tench']


@pytest.fixture(scope='module')
def clip():
    torch.manual_seed(0)
    return OpenCLIP('mmprompt-tiny-vit', pretrained=None)


def expected_prompts(clip, context, position):
    """``(K, L, W)``: the token embeddings of "X .. X name." (layout as
    ``position``) with the X embeddings replaced by ``context[k]``."""
    n_ctx = context.shape[-2]
    tokens = clip.tokenize(
        [reference.prompt_text(n, n_ctx, position) for n in NAMES])
    embeddings = clip.token_embedding(tokens).detach().clone()
    x_id = clip.bpe_encode('X')[0]
    for k, row in enumerate(tokens):
        embeddings[k, row == x_id] = context[k]
    return embeddings


@pytest.mark.parametrize('position', ['end', 'middle', 'front'])
@pytest.mark.parametrize('csc', [False, True])
def test_coop_prompts_are_the_papers(clip, position, csc):
    learner = CoOpPromptLearner(
        clip,
        n_ctx=5,
        csc=csc,
        num_classes=len(NAMES) if csc else None,
        class_token_position=position)
    learner.set_class_names(NAMES)
    with torch.no_grad():
        learner.ctx.normal_()  # far from any token embedding
    prompts = learner()
    assert prompts.groups == 1 and prompts.layout == position
    ctx = learner.ctx.detach()
    context = ctx if csc else ctx.expand(len(NAMES), -1, -1)
    torch.testing.assert_close(prompts.embeddings()[0],
                               expected_prompts(clip, context, position))
    # an EOT cut keeps the first positions
    torch.testing.assert_close(
        prompts.embeddings(length=12)[0],
        expected_prompts(clip, context, position)[:, :12])
    # a class range of a class-specific context takes those classes'
    torch.testing.assert_close(
        prompts.embeddings(slice(1, 3))[0],
        expected_prompts(clip, context, position)[1:3])


def test_cocoop_prompts_are_the_papers(clip):
    """t_i(x) = [v_1 + pi(x)] .. [v_M + pi(x)] [CLASS_i], with pi the
    Meta-Net Linear -> ReLU -> Linear, computed here by hand."""
    learner = CoCoOpPromptLearner(clip, n_ctx=4)
    learner.set_class_names(NAMES)
    with torch.no_grad():
        for p in learner.parameters():
            p.normal_(0, 0.3)
    features = torch.nn.functional.normalize(torch.randn(3, 64), dim=-1)
    prompts = learner(features)
    assert prompts.groups == 3 and prompts.layout == 'end'
    net = learner.meta_net
    shift = torch.relu(features @ net.linear1.weight.t() + net.linear1.bias)
    shift = shift @ net.linear2.weight.t() + net.linear2.bias  # (B, W)
    embeddings = prompts.embeddings()
    for b in range(3):
        context = (learner.ctx + shift[b]).detach()
        torch.testing.assert_close(
            embeddings[b].detach(),
            expected_prompts(clip, context.expand(len(NAMES), -1, -1), 'end'))


def test_prompts_validate_their_shapes(clip):
    learner = CoOpPromptLearner(clip, n_ctx=4)
    learner.set_class_names(NAMES)
    tokens = learner.class_tokens()
    assert isinstance(tokens, ClassTokens) and tokens.n_ctx == 4
    with pytest.raises(ValueError, match='layout must be one of'):
        Prompts(learner.ctx[None, None], tokens, layout='begin')
    with pytest.raises(ValueError, match='3 per-class contexts for 4'):
        Prompts(torch.zeros(1, 3, 4, 64), tokens)
    with pytest.raises(ValueError, match='5 vectors but the class tokens'):
        Prompts(torch.zeros(1, 1, 5, 64), tokens)
    with pytest.raises(ValueError, match=r'\(groups, 1 or classes'):
        Prompts(learner.ctx, tokens)


def test_no_class_names_yet(clip):
    learner = CoOpPromptLearner(clip, n_ctx=4)
    with pytest.raises(RuntimeError, match='no class names are set'):
        learner()


def test_class_tokens_follow_the_class_names(clip):
    learner = CoOpPromptLearner(clip, n_ctx=4)
    learner.set_class_names(NAMES)
    first = learner.class_tokens()
    learner.set_class_names(NAMES[::-1])
    second = learner.class_tokens()
    assert second.version != first.version
    torch.testing.assert_close(second.embeddings, first.embeddings.flip(0))
    assert second.name_lengths == first.name_lengths[::-1]


@pytest.fixture
def warnings_logged(monkeypatch):
    """The WARNING messages the learners log."""
    import mmprompt.models.prompt_learners.base as base
    messages = []

    def record(msg, logger=None, level=logging.INFO):
        if level >= logging.WARNING:
            messages.append(msg)

    monkeypatch.setattr(base, 'print_log', record)
    return messages


@pytest.mark.parametrize('learner_type',
                         [CoOpPromptLearner, CoCoOpPromptLearner])
def test_n_ctx_that_ctx_init_overrides_is_said(clip, learner_type,
                                               warnings_logged):
    """As in the original CoOp and CoCoOp, the words of ctx_init set the
    number of context vectors; an n_ctx that disagrees (e.g. the base
    config's 16 under --cfg-options ...ctx_init='a photo of a') is ignored,
    and now said so, naming both."""
    learner = learner_type(clip, n_ctx=16, ctx_init='a photo of a')
    assert learner.n_ctx == 4
    assert len(warnings_logged) == 1
    message = warnings_logged[0]
    assert 'n_ctx=16' in message and "ctx_init='a photo of a'" in message
    assert '4 context vectors' in message and 'n_ctx=4' in message
    # An n_ctx that agrees, or none: nothing to say.
    for kwargs in (dict(n_ctx=4), {}):
        warnings_logged.clear()
        assert learner_type(clip, ctx_init='a photo of a', **kwargs).n_ctx == 4
        assert warnings_logged == []
    # Random init: n_ctx vectors, 16 by default (the original's N_CTX).
    assert learner_type(clip).n_ctx == 16
    assert learner_type(clip, n_ctx=8).n_ctx == 8
    for bad in (0, -1, 2.5, 'four'):
        with pytest.raises(ValueError, match='n_ctx must be a positive'):
            learner_type(clip, n_ctx=bad, ctx_init='a photo of a')


def test_csc_num_classes_that_does_not_match_the_data(clip):
    """A config's num_classes that is not the data's number of classes is
    named with the number to set (it advised csc=False before)."""
    learner = CoOpPromptLearner(clip, n_ctx=4, csc=True, num_classes=3)
    with pytest.raises(ValueError) as err:
        learner.set_class_names(NAMES)
    message = str(err.value)
    assert 'num_classes=3' in message and '4 classes' in message
    assert 'num_classes=4' in message
    assert 'model.head.prompt_learner.num_classes' in message
    assert "'dog'" in message
    assert 'csc=False' not in message
    learner = CoOpPromptLearner(clip, n_ctx=4, csc=True, num_classes=4)
    learner.set_class_names(NAMES)
    assert learner().context.shape[:2] == (1, 4)
