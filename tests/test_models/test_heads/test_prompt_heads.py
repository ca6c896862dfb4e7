# Copyright (c) mmprompt contributors. All rights reserved.
import coop_reference as reference
import open_clip
import pytest
import torch
import torch.nn.functional as F

from mmprompt.models import OpenCLIP
from mmprompt.registry import MODELS

NAMES = [
    'abyssinian', 'american_bulldog', 'Annual Crop Land', 'sea or lake',
    'Apply_Eye_Makeup', '2012 AM General Hummer SUV', 'tench'
]
ARCHS = {'mmprompt-tiny-vit': 32, 'mmprompt-tiny-rn': 64}


@pytest.fixture(scope='module', params=sorted(ARCHS))
def clip(request):
    torch.manual_seed(0)
    return OpenCLIP(request.param, pretrained=None)


def build(clip, head, names=NAMES):
    return MODELS.build(
        dict(type='PromptClassifier', clip=clip, head=head, class_names=names))


def image_features(clip, batch=3, seed=1):
    size = ARCHS[clip.arch]
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=generator)
    with torch.no_grad():
        return images, F.normalize(clip.encode_image(images), dim=-1)


@pytest.mark.parametrize('position', ['end', 'middle', 'front'])
@pytest.mark.parametrize('csc', [False, True])
def test_coop_random_init_matches_open_clip(clip, position, csc):
    torch.manual_seed(2)
    learner = dict(
        type='CoOpPromptLearner',
        n_ctx=5,
        csc=csc,
        num_classes=len(NAMES) if csc else None,
        class_token_position=position)
    model = build(clip, dict(type='CoOpHead', prompt_learner=learner))
    images, f = image_features(clip)
    ctx = model.head.prompt_learner.ctx.detach()
    assert ctx.shape == ((len(NAMES), 5, 64) if csc else (5, 64))
    with torch.no_grad():
        ours = model(images)
        theirs = reference.coop_logits(clip.model, clip.tokenizer, f, NAMES,
                                       ctx, position)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('position', ['end', 'middle', 'front'])
def test_coop_word_init_matches_open_clip(clip, position):
    learner = dict(
        type='CoOpPromptLearner',
        ctx_init='a photo of a',
        class_token_position=position)
    model = build(clip, dict(type='CoOpHead', prompt_learner=learner))
    # Move the context off its initial words, then compare.
    with torch.no_grad():
        model.head.prompt_learner.ctx.add_(0.05 * torch.randn(4, 64))
    images, f = image_features(clip)
    ctx = model.head.prompt_learner.ctx.detach()
    with torch.no_grad():
        theirs = reference.coop_logits(clip.model, clip.tokenizer, f, NAMES,
                                       ctx, position)
        torch.testing.assert_close(model(images), theirs, rtol=1e-5, atol=1e-5)


def test_word_init_is_the_hand_written_prompt(clip):
    """Before training, CoOp initialised from 'a photo of a' is zero-shot
    CLIP with the prompt 'a photo of a {}.' (computed by open_clip)."""
    model = build(
        clip,
        dict(
            type='CoOpHead',
            prompt_learner=dict(
                type='CoOpPromptLearner', ctx_init='a_photo_of_a')))
    images, f = image_features(clip)
    tokens = clip.tokenizer(
        [f"a photo of a {n.replace('_', ' ')}." for n in NAMES])
    with torch.no_grad():
        g = F.normalize(clip.model.encode_text(tokens), dim=-1)
        expected = clip.model.logit_scale.exp() * f @ g.t()
        torch.testing.assert_close(
            model(images), expected, rtol=1e-5, atol=1e-5)
        zero_shot = build(
            clip, dict(type='ZeroShotHead', templates='a photo of a {}.'))
        torch.testing.assert_close(
            zero_shot(images), expected, rtol=1e-5, atol=1e-5)


def test_multi_token_init_word_is_handled(clip):
    # 'zzyzx' is several BPE tokens: the context gets one vector per token
    # and the class tokens stay aligned.
    tokenizer = clip.tokenizer
    init = 'a zzyzx photo'
    n_tokens = len(tokenizer.encode(init))
    assert n_tokens > 3
    model = build(
        clip,
        dict(
            type='CoOpHead',
            prompt_learner=dict(type='CoOpPromptLearner', ctx_init=init)))
    assert model.head.prompt_learner.n_ctx == n_tokens
    images, f = image_features(clip)
    tokens = tokenizer([f"{init} {n.replace('_', ' ')}." for n in NAMES])
    with torch.no_grad():
        g = F.normalize(clip.model.encode_text(tokens), dim=-1)
        torch.testing.assert_close(
            model(images),
            clip.model.logit_scale.exp() * f @ g.t(),
            rtol=1e-5,
            atol=1e-5)


@pytest.mark.parametrize('ctx_init,n_ctx', [('a photo of a', 4), ('', 6)])
def test_cocoop_matches_per_image_open_clip(clip, ctx_init, n_ctx):
    torch.manual_seed(4)
    model = build(
        clip,
        dict(
            type='CoCoOpHead',
            prompt_learner=dict(
                type='CoCoOpPromptLearner', n_ctx=n_ctx, ctx_init=ctx_init)))
    learner = model.head.prompt_learner
    # A trained-looking Meta-Net: large enough to matter.
    with torch.no_grad():
        for p in learner.meta_net.parameters():
            p.normal_(0, 0.3)
    assert learner.meta_net.linear1.out_features == 64 // 16
    images, f = image_features(clip, batch=4)
    with torch.no_grad():
        theirs = reference.cocoop_logits(clip.model, clip.tokenizer, f, NAMES,
                                         learner.ctx, learner.meta_net)
        torch.testing.assert_close(model(images), theirs, rtol=1e-5, atol=1e-5)


def test_prompt_ensembling_is_mean_of_normalised_features(clip):
    templates = ['a photo of a {}.', 'art of the {}.', 'a {} in a game.']
    model = build(clip, dict(type='ZeroShotHead', templates=templates))
    images, f = image_features(clip)
    per_template = []
    for template in templates:
        tokens = clip.tokenizer(
            [template.format(n.replace('_', ' ')) for n in NAMES])
        with torch.no_grad():
            per_template.append(
                F.normalize(clip.model.encode_text(tokens), dim=-1))
    g = F.normalize(torch.stack(per_template).mean(0), dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(
            model(images),
            clip.model.logit_scale.exp() * f @ g.t(),
            rtol=1e-5,
            atol=1e-5)


def test_template_sets():
    from mmprompt.models.heads import resolve_templates
    assert len(resolve_templates('imagenet-7')) == 7
    assert len(resolve_templates('imagenet-80')) == 80
    assert resolve_templates('imagenet-7+EuroSAT')[-1] == \
        'a centered satellite photo of {}.'
    assert resolve_templates('DescribableTextures') == ['{} texture.']
    with pytest.raises(ValueError, match='not a template'):
        resolve_templates('Pets')
    with pytest.raises(ValueError, match='needs a'):
        resolve_templates(['a photo'])


def test_open_clip_tokenizer_is_the_original_bpe(clip):
    # CoOp counts name tokens with CLIP's BPE; open_clip ships the same.
    tokenizer = open_clip.get_tokenizer('mmprompt-tiny-vit')
    assert tokenizer.encode('a photo of a') == [320, 1125, 539, 320]
    assert tokenizer(['a dog.'
                      ])[0, :5].tolist() == [49406, 320, 1929, 269, 49407]
