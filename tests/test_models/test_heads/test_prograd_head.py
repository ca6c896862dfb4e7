# Copyright (c) mmprompt contributors. All rights reserved.
"""ProGradHead and ProGradPromptLearner against the original ProGrad's own
outputs (``../shared/golden/prograd``): the initial context, the logits of
its checkpoints, the teacher's text features and logits, both losses and
both gradients; and what differs from the original on purpose."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample
from prograd_golden import ARCHS, CASES, VARIANTS, Golden, assert_rel

from mmprompt.models import (LossTerms, OpenCLIP, PlainTextEncoder,
                             ProGradPromptLearner, Prompts)
from mmprompt.registry import MODELS
from mmprompt.utils import load_checkpoint_file

NAMES = ['abyssinian', 'american_bulldog', 'sea or lake']


@pytest.fixture(scope='module')
def clip():
    torch.manual_seed(0)
    return OpenCLIP('mmprompt-tiny-vit', pretrained=None)


@pytest.fixture(
    params=[(a, v) for a in ARCHS for v in VARIANTS],
    ids=lambda p: f'{p[0]}-{p[1]}')
def golden(request, golden_dir):
    return Golden(golden_dir, *request.param)


def test_reproduces_the_originals_logits(golden):
    """The original's checkpoint, through the converter, gives the
    original's eval logits; the teacher's features are the original's."""
    model = golden.model()
    model.eval()
    with torch.no_grad():
        logits = model(golden.images)
    assert_rel(logits, golden.load('logits.pt'), 'logits')
    teacher = golden.load('text_features.pt')
    assert model.head.teacher.prompts(
        golden.class_names) == [teacher['prompts']]
    assert model.head.teacher.templates == [teacher['template']]
    assert_rel(
        model.head.teacher(golden.class_names), teacher['text_features'],
        'teacher text features')


@pytest.mark.parametrize('case', CASES, ids=['conflict', 'aligned'])
def test_reproduces_both_losses_and_gradients(golden, case):
    model = golden.model()
    model.train()
    train, grads = golden.load(f'train{case}.pt'), golden.load(
        f'grads{case}.pt')
    head = model.head
    feats = model.extract_feat(golden.images)
    assert_rel(head(feats), train['logits'], 'student logits')
    assert_rel(
        head.teacher_logits(feats[0]), train['teacher_logits'],
        'teacher logits')
    losses = model(golden.images, golden.samples(case), mode='loss')
    assert sorted(losses) == ['loss_ce', 'loss_kl']
    assert_rel(losses['loss_ce'], train['xe_loss'], 'xe_loss')
    assert_rel(losses['loss_kl'], train['kl_loss'], 'kl_loss')
    ctx = head.prompt_learner.ctx
    g_kl, = torch.autograd.grad(losses['loss_kl'], ctx, retain_graph=True)
    g_ce, = torch.autograd.grad(losses['loss_ce'], ctx)
    assert_rel(g_kl, grads['kl']['ctx'], 'gradient of kl_loss')
    assert_rel(g_ce, grads['ce']['ctx'], 'gradient of xe_loss')


def test_template_init_is_the_originals(golden_dir):
    """CTX_INIT True: 16 vectors, zero but for the last k=8 (words, not BPE
    tokens), the 9th token of the words ('a') fixed text after them."""
    golden = Golden(golden_dir, 'vit', 'prograd_template-init16')
    model = golden.model(load=False)
    learner = model.head.prompt_learner
    effective = golden.spec['effective']
    assert learner.prompt_prefix == effective['prompt_prefix']
    assert learner.n_ctx == effective['n_ctx'] == 16
    assert_rel(learner.ctx, golden.load('init.pt')['ctx'], 'initial ctx')
    assert learner.ctx[:8].abs().sum() == 0
    # Position 17, right after the context, is the word 'a' of the prompt.
    tokens = model.clip.tokenize(f'{learner.prompt_prefix} abyssinian.')
    assert model.clip.bpe_encode('a') == [int(tokens[0, 17])]
    # The original's prefix/suffix buffers equal ours.
    original = load_checkpoint_file(str(golden.root / 'model.pth.tar-10'))
    class_tokens = learner.class_tokens()
    torch.testing.assert_close(class_tokens.embeddings[:, :1],
                               original['state_dict']['token_prefix'])
    torch.testing.assert_close(class_tokens.suffix,
                               original['state_dict']['token_suffix'])


@pytest.mark.parametrize('arch', ARCHS)
def test_the_prefix_cached_encoder_applies(golden_dir, arch):
    """The default prompts (one context, class name last) share their
    prefix, so the fast encoder runs them; it equals the plain encoder on
    the full 77 positions, logits and both gradients."""
    golden = Golden(golden_dir, arch, 'prograd_template-init16')
    fast = golden.model()
    assert type(fast.head.text_encoder).__name__ == 'PrefixCachedTextEncoder'
    prompts = fast.head.prompt_learner()
    assert isinstance(prompts, Prompts) and prompts.shared_prefix == 1 + 16
    slow = golden.model(
        text_encoder=dict(type='PlainTextEncoder', cut_after_eot=False))
    assert isinstance(slow.head.text_encoder, PlainTextEncoder)
    found = []
    for model in (fast, slow):
        losses = model(golden.images, golden.samples(), mode='loss')
        ctx = model.head.prompt_learner.ctx
        found.append([
            losses['loss_ce'], losses['loss_kl'],
            *torch.autograd.grad(losses['loss_kl'], ctx, retain_graph=True),
            *torch.autograd.grad(losses['loss_ce'], ctx)
        ])
    for a, b, name in zip(*found, ('ce', 'kl', 'g_kl', 'g_ce')):
        assert_rel(a, b, name)


def test_the_losses_are_the_originals_formulas(clip):
    """The distillation term is T² times the soft cross-entropy to the
    teacher's softmax (the original's value, not the KL divergence), the
    cross-entropy mmpretrain's; both in the update's terms, not summed."""
    head = MODELS.build(
        dict(type='ProGradHead', templates='EuroSAT', temperature=2.0),
        default_args=dict(clip=clip))
    head.set_class_names(NAMES)
    feats = F.normalize(torch.randn(4, 64), dim=-1)
    labels = torch.tensor([0, 2, 1, 1])
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    losses = head.loss((feats, ), samples)
    z = head((feats, ))
    teacher = head.cosine_logits(
        feats,
        F.normalize(
            clip.encode_text_tokens(
                clip.tokenize([
                    f'a centered satellite photo of {n.replace("_", " ")}.'
                    for n in NAMES
                ])),
            dim=-1))
    torch.testing.assert_close(losses['loss_ce'], F.cross_entropy(z, labels))
    soft = -(F.softmax(teacher / 2, -1) * F.log_softmax(z / 2, -1)).sum(-1)
    torch.testing.assert_close(losses['loss_kl'], 4 * soft.mean())
    kl = F.kl_div(
        F.log_softmax(z / 2, -1),
        F.softmax(teacher / 2, -1),
        reduction='batchmean') * 4
    assert not torch.allclose(losses['loss_kl'], kl)  # not the KL's value
    terms = head.update_terms(losses)
    assert isinstance(terms, LossTerms) and sorted(terms) == sorted(losses)
    assert terms['loss_kl'] is losses['loss_kl']


def test_a_plain_optimizer_wrapper_is_refused(golden_dir):
    """The summed loss would train CoOp with distillation, not ProGrad: a
    plain OptimWrapper is told which wrapper to use."""
    golden = Golden(golden_dir, 'vit', 'prograd_csc4')
    model = golden.model(load=False)
    losses = model(golden.images, golden.samples(), mode='loss')
    parsed, log_vars = model.parse_losses(losses)
    assert isinstance(parsed, LossTerms)
    assert set(log_vars) == {'loss', 'loss_ce', 'loss_kl'}
    torch.testing.assert_close(log_vars['loss'],
                               losses['loss_ce'] + losses['loss_kl'])
    wrapper = OptimWrapper(
        optimizer=torch.optim.SGD(
            model.head.prompt_learner.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="type='ProGradOptimWrapper'"):
        wrapper.update_params(parsed)
    with pytest.raises(TypeError, match='ProGradOptimWrapper'):
        parsed.backward()


def test_eval_is_coops_and_the_teacher_follows_the_classes(clip):
    head = MODELS.build(
        dict(type='ProGradHead', templates='Food101'),
        default_args=dict(clip=clip))
    head.set_class_names(NAMES)
    first = head.teacher(head.class_names)
    head.set_class_names(NAMES[:2])
    assert head.teacher(head.class_names).shape == (2, 64)
    torch.testing.assert_close(head.teacher(head.class_names), first[:2])
    head.eval()
    feats = F.normalize(torch.randn(2, 64), dim=-1)
    with torch.no_grad():
        assert head((feats, )).shape == (2, 2)


def test_the_original_settings_it_ignores_are_honoured(clip):
    """'middle' raises NameError in the original; here it is CoOp's."""
    head = MODELS.build(
        dict(
            type='ProGradHead',
            templates='OxfordPets',
            prompt_learner=dict(
                type='ProGradPromptLearner',
                n_ctx=16,
                ctx_init=True,
                class_token_position='middle')),
        default_args=dict(clip=clip))
    head.set_class_names(NAMES)
    assert head.prompt_learner().layout == 'middle'


@pytest.mark.parametrize('cfg,error,match', [
    (dict(templates='OxfordPet'), ValueError,
     r"templates='OxfordPet' is not a template .*'prograd' table"),
    (dict(templates=[]), ValueError, 'templates is empty'),
    (dict(templates=['a photo of {} here', 'a photo']), ValueError,
     r"needs a \"\{\}\" for the class name, got \['a photo'\]"),
    (dict(templates='{} texture.'), ValueError,
     r"ctx_init=True takes the words of one template ending in ' \{\}\.'"
     r".*'\{\} texture\.'"),
    (dict(templates=['a {}.', 'the {}.']), ValueError,
     'ctx_init=True takes the words of one template'),
    (dict(temperature=0), ValueError,
     'temperature must be a positive number, got 0'),
    (dict(
        prompt_learner=dict(
            type='ProGradPromptLearner', n_ctx=4, ctx_init=True),
        templates='OxfordPets'), ValueError,
     r"ctx_init='a type of pet, a photo of a' has 8 words, more than "
     r'n_ctx=4'),
])
def test_bad_arguments_name_the_value(clip, cfg, error, match):
    with pytest.raises(error, match=match):
        MODELS.build(
            dict(type='ProGradHead', **cfg), default_args=dict(clip=clip))


def test_ctx_init_true_needs_the_head(clip):
    with pytest.raises(ValueError, match='ProGradHead'):
        ProGradPromptLearner(clip, ctx_init=True)
    # False is a random init, as the original's CTX_INIT False.
    learner = ProGradPromptLearner(clip, n_ctx=8, ctx_init=False)
    assert learner.prompt_prefix == ' '.join(['X'] * 8)
    assert learner.ctx.abs().sum() > 0


def test_the_teacher_is_fp32_beside_an_fp16_student(golden_dir):
    """The original's teacher is a clip_model.float() copy whatever PREC:
    with the CLIP in fp16 (the original's default) the teacher's features
    are still the original's fp32 ones."""
    golden = Golden(golden_dir, 'rn', 'prograd_template-init16')
    model = golden.model(load=False)
    clip = model.clip
    fp16 = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP',
                arch=clip.arch,
                pretrained=clip.pretrained,
                precision='fp16'),
            head=golden.head_cfg(),
            class_names=golden.class_names))
    assert fp16.head.prompt_learner.ctx.dtype == torch.float16
    assert_rel(
        fp16.head.teacher(golden.class_names),
        golden.load('text_features.pt')['text_features'], 'fp32 teacher')
