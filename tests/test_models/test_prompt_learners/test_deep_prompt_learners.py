# Copyright (c) mmprompt contributors. All rights reserved.
"""The deep prompt learners' semantics written out independently: which
positions the context learns and which words stay fixed, which blocks a
depth prompts, the widths taken from the model, the prefix-cached encoder
with deep text rows, and the errors for bad settings."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from mmprompt.models import OpenCLIP
from mmprompt.registry import MODELS
from mmprompt.utils import (CheckpointMismatchError, check_trained_on,
                            checkpoint_filter_fn, record_trained_on)

NAMES = ['cat', 'sea_lion', 'tench fish']


@pytest.fixture(scope='module')
def vit():
    torch.manual_seed(0)
    return OpenCLIP('mmprompt-tiny-vit-deep', pretrained=None)


@pytest.fixture(scope='module')
def rn():
    torch.manual_seed(0)
    return OpenCLIP('mmprompt-tiny-rn', pretrained=None)


def build(clip, **learner):
    learner = MODELS.build(learner, default_args=dict(clip=clip))
    if hasattr(learner, 'set_class_names'):
        learner.set_class_names(NAMES)
    return learner


def test_word_init_learns_the_first_tokens_and_keeps_the_rest(vit):
    """MaPLe's default learns 'a photo' and keeps 'of a' as fixed text."""
    learner = build(vit, type='MaPLePromptLearner', n_ctx=2, depth=3)
    tokens = vit.tokenize([
        'a photo of a cat.', 'a photo of a sea lion.',
        'a photo of a tench fish.'
    ])
    words = vit.token_embedding(tokens).detach()
    torch.testing.assert_close(learner.ctx.detach(), words[0, 1:3])
    prompts = learner()
    assert prompts.class_tokens.n_ctx == 4  # 'a photo' + 'of a'
    assert prompts.shared_prefix == 5
    torch.testing.assert_close(prompts.embeddings()[0].detach(), words)
    with torch.no_grad():
        learner.ctx.add_(1.0)
    moved = learner().embeddings()[0].detach()
    torch.testing.assert_close(moved[:, 1:3], words[:, 1:3] + 1.0)
    torch.testing.assert_close(moved[:, 3:], words[:, 3:])
    random = build(
        vit,
        type='IVLPPromptLearner',
        n_ctx=3,
        ctx_init='',
        text_depth=1,
        vision_depth=1)
    assert random().class_tokens.n_ctx == 3
    assert random.prompt_prefix == 'X X X'


@pytest.mark.parametrize('depth,blocks', [(1, []), (2, [1]), (4, [1, 2, 3])])
def test_depth_counts_the_input_as_one(vit, depth, blocks):
    ivlp = build(
        vit,
        type='IVLPPromptLearner',
        text_depth=depth,
        n_vision_ctx=3,
        vision_depth=depth)
    prompts = ivlp()
    assert sorted(prompts.text_rows) == blocks
    assert sorted(prompts.vision_rows) == blocks
    assert prompts.vision_tokens.shape == (3, vit.vision_width)
    assert prompts.rows_dtype == torch.float16
    maple = build(vit, type='MaPLePromptLearner', depth=depth)
    tokens, rows = maple.vision_prompts()
    assert sorted(rows) == sorted(maple().text_rows) == blocks
    vpt = build(vit, type='VPTDeepPromptLearner', vision_depth=depth)
    assert sorted(vpt()[1]) == blocks


def test_widths_come_from_the_model(vit):
    """tiny-vit-deep has a 64-wide text tower and a 96-wide image tower."""
    assert (vit.width, vit.vision_width) == (64, 96)
    maple = build(vit, type='MaPLePromptLearner', n_ctx=2, depth=3)
    assert maple.proj.weight.shape == (96, 64)
    assert all(f.weight.shape == (96, 64)
               for f in maple.compound_prompt_projections)
    # the coupling functions start identical, as the original's deep copies
    first = maple.compound_prompt_projections[0]
    for f in maple.compound_prompt_projections[1:]:
        torch.testing.assert_close(f.weight, first.weight)
    tokens, rows = maple.vision_prompts()
    torch.testing.assert_close(tokens, maple.proj(maple.ctx))
    torch.testing.assert_close(
        rows[2],
        maple.compound_prompt_projections[1](maple.compound_prompts_text[1]))
    ivlp = build(vit, type='IVLPPromptLearner', text_depth=2, vision_depth=2)
    assert ivlp.text_deep[0].shape == (2, 64)
    assert ivlp.vision_ctx.shape == ivlp.vision_deep[0].shape == (2, 96)


def head_model(clip, learner, encoder='PrefixCachedTextEncoder'):
    return MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(
                type='DeepPromptHead',
                prompt_learner=learner,
                text_encoder=dict(type=encoder)),
            class_names=NAMES))


@pytest.mark.parametrize('arch', ['vit', 'rn'])
def test_prefix_cached_encoder_is_exact_with_deep_text_rows(
        arch, vit, rn, request):
    """Deep language prompting on a ViT and a ResNet CLIP: the prefix-cached
    encoder against the plain one, logits and gradients (without the fp16
    rounding, which the prefix-cached encoder applies once per group)."""
    clip = vit if arch == 'vit' else rn
    size = 32 if arch == 'vit' else 64
    learner = dict(
        type='DeepLanguagePromptLearner',
        n_ctx=2,
        text_depth=len(clip.text_blocks),
        fp16_rounding=False)
    torch.manual_seed(1)
    cached = head_model(clip, learner)
    plain = head_model(clip, learner, 'PlainTextEncoder')
    plain.head.prompt_learner.load_state_dict(
        cached.head.prompt_learner.state_dict())
    assert cached.head.text_encoder.applies(cached.head.prompt_learner())
    images = torch.randn(2, 3, size, size)
    samples = [DataSample().set_gt_label(i) for i in (0, 2)]
    results = []
    for model in (cached, plain):
        loss = model.loss(images, samples)['loss']
        params = list(model.head.prompt_learner.parameters())
        results.append((loss, torch.autograd.grad(loss, params)))
    (loss, grads), (plain_loss, plain_grads) = results
    torch.testing.assert_close(loss, plain_loss, rtol=1e-5, atol=1e-6)
    for grad, expected in zip(grads, plain_grads):
        assert expected.abs().max() > 0
        torch.testing.assert_close(
            grad, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def test_vision_prompts_are_appended_before_ln_pre(vit):
    """The image pass equals open_clip's ViT with the tokens appended after
    the positional embedding and before ln_pre, replaced before block 1."""
    learner = dict(
        type='IVLPPromptLearner',
        text_depth=1,
        n_vision_ctx=3,
        vision_depth=2,
        fp16_rounding=False)
    model = head_model(vit, learner)
    images = torch.randn(2, 3, 32, 32)
    ours = model.extract_feat(images)[0]
    visual = vit.model.visual
    ivlp = model.head.prompt_learner
    x = visual.conv1(images).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(2, 1, -1)
    x = torch.cat([cls, x], 1) + visual.positional_embedding
    x = visual.ln_pre(torch.cat([x, ivlp.vision_ctx.expand(2, -1, -1)], 1))
    for i, block in enumerate(visual.transformer.resblocks):
        if i == 1:
            x = torch.cat([x[:, :-3], ivlp.vision_deep[0].expand(2, -1, -1)],
                          1)
        x = block(x)
    expected = F.normalize(visual.ln_post(x[:, 0]) @ visual.proj, dim=-1)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('learner,message', [
    (dict(type='IVLPPromptLearner', text_depth=5), r'text_depth must be an '
     r'int in 1\.\.4: the text tower has 4 blocks.*got 5'),
    (dict(type='IVLPPromptLearner', text_depth=2,
          vision_depth=0), r'vision_depth must be an int in 1\.\.4.*got 0'),
    (dict(type='MaPLePromptLearner',
          depth=9), r'depth must be an int in 1\.\.4.*got 9'),
    (dict(type='DeepLanguagePromptLearner',
          text_depth=12), r'text_depth .*got 12'),
    (dict(type='VPTDeepPromptLearner',
          vision_depth=12), r'vision_depth .*got 12'),
    (dict(type='IVLPPromptLearner', n_ctx=0,
          text_depth=2), r'n_ctx must be a positive '
     r'int.*got 0'),
    (dict(type='MaPLePromptLearner', n_ctx=-2), r'n_ctx .*got -2'),
    (dict(
        type='IVLPPromptLearner', text_depth=2, vision_depth=2,
        n_vision_ctx=0), r'n_vision_ctx must be a positive int.*got 0'),
    (dict(type='VPTDeepPromptLearner', n_vision_ctx=-1,
          vision_depth=2), r'n_vision_ctx .*got -1'),
    (dict(type='MaPLePromptLearner', n_ctx=5, depth=2),
     r"n_ctx=5 learned tokens, but ctx_init='a photo of a' has only 4"),
])
def test_bad_settings_are_refused(vit, learner, message):
    with pytest.raises(ValueError, match=message):
        build(vit, **learner)


@pytest.mark.parametrize('learner', [
    dict(type='IVLPPromptLearner', text_depth=2, vision_depth=2),
    dict(type='MaPLePromptLearner', depth=2),
    dict(type='VPTDeepPromptLearner', vision_depth=2),
])
def test_vision_prompts_on_a_resnet_are_refused_at_build(rn, learner):
    with pytest.raises(
            ValueError,
            match=r"vision tokens cannot be added to the image "
            r"tower of 'mmprompt-tiny-rn': its image tower is a "
            r'ModifiedResNet, not a ViT'):
        build(rn, **learner)


def test_deep_language_prompting_runs_on_a_resnet(rn):
    model = head_model(rn,
                       dict(type='DeepLanguagePromptLearner', text_depth=2))
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 3)


def test_a_checkpoint_of_another_method_is_refused(vit):
    maple = head_model(vit, dict(type='MaPLePromptLearner', depth=2))
    ivlp = head_model(
        vit, dict(type='IVLPPromptLearner', text_depth=2, vision_depth=2))
    checkpoint = dict(meta=dict(), state_dict=maple.state_dict())
    record_trained_on(checkpoint, maple)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'MaPLePromptLearner.*IVLPPromptLearner|'
            r'IVLPPromptLearner.*MaPLePromptLearner'):
        check_trained_on(checkpoint, ivlp, 'maple.pth')
    # an original file: the keys tell the method
    original = {
        'state_dict': {
            'prompt_learner.ctx':
            torch.zeros(2, 64),
            'image_encoder.VPT':
            torch.zeros(2, 96),
            'text_encoder.transformer.resblocks.1.VPT_shallow':
            torch.zeros(2, 64),
            'image_encoder.transformer.resblocks.1.VPT_shallow':
            torch.zeros(2, 96),
        },
        'epoch': 5
    }
    assert set(checkpoint_filter_fn(original, ivlp)) == {
        f'head.prompt_learner.{k}'
        for k in ('ctx', 'vision_ctx', 'text_deep.0', 'vision_deep.0')
    }
    with pytest.raises(
            ValueError,
            match=r'original IVLP code, whose prompts load into '
            r'a IVLPPromptLearner; the model has a '
            r'MaPLePromptLearner'):
        checkpoint_filter_fn(original, maple)


@pytest.mark.parametrize('pool', ['avg', 'attention'])
def test_vision_prompts_on_a_tower_pooled_elsewhere_are_refused(pool):
    """A ViT that averages its tokens or pools them by attention would pool
    the prompts too: refused when the learner is built."""
    torch.manual_seed(0)
    clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
    visual = clip.model.visual
    if pool == 'avg':
        visual.pool_type = 'avg'
        reason = "pools with 'avg'"
    else:
        visual.attn_pool = torch.nn.Identity()
        reason = 'pools with attention'
    with pytest.raises(ValueError, match=f'{reason}, not at the class token'):
        build(clip, type='MaPLePromptLearner', depth=2)
    # text-only deep prompts do not touch the image tower
    build(clip, type='DeepLanguagePromptLearner', text_depth=2)


def test_the_rounding_is_not_part_of_the_checkpoint_record(vit):
    """fp16_rounding changes the computation, not the prompt: a checkpoint
    trained with it loads into a model without it."""
    learner = dict(type='IVLPPromptLearner', text_depth=2, vision_depth=2)
    rounded = head_model(vit, learner)
    plain = head_model(vit, dict(learner, fp16_rounding=False))
    assert plain.head.prompt_learner.rows_dtype is None
    assert rounded.head.prompt_learner.rows_dtype == torch.float16
    checkpoint = dict(meta=dict(), state_dict=rounded.state_dict())
    record_trained_on(checkpoint, rounded)
    assert 'fp16_rounding' not in checkpoint['meta']['trained_on'][
        'prompt_learner']
    assert checkpoint['meta']['trained_on']['prompt_learner'][
        'vision_depth'] == 2
    check_trained_on(checkpoint, plain, 'ivlp.pth')
    deeper = head_model(vit, dict(learner, text_depth=1))
    with pytest.raises(CheckpointMismatchError, match='text_depth: 2'):
        check_trained_on(checkpoint, deeper, 'ivlp.pth')


def test_heads_without_vision_prompts_keep_the_frozen_image_pass(vit):
    """CoOp's (and every head without extract_image_features) image
    features stay the frozen tower's, computed without a graph; a head with
    vision prompts gets features with one."""
    coop = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=vit,
            head=dict(
                type='CoOpHead',
                prompt_learner=dict(type='CoOpPromptLearner', n_ctx=2)),
            class_names=NAMES))
    images = torch.randn(2, 3, 32, 32)
    features, = coop.extract_feat(images)
    assert not features.requires_grad
    with torch.no_grad():
        expected = F.normalize(vit.encode_image(images), dim=-1)
    torch.testing.assert_close(features, expected)
    maple = head_model(vit, dict(type='MaPLePromptLearner', depth=2))
    prompted, = maple.extract_feat(images)
    assert prompted.requires_grad
    grads = torch.autograd.grad(prompted.sum(),
                                [maple.head.prompt_learner.ctx])
    assert grads[0].abs().sum() > 0  # through proj(ctx)
