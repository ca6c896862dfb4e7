# Copyright (c) mmprompt contributors. All rights reserved.
"""KgCoOp against the original's own outputs (``golden/kgcoop``): logits,
teacher features, each loss term, the gradients and SGD steps, on a ViT and
a ResNet CLIP, plus the settings where mmprompt departs from it."""
import json

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from mmprompt.registry import MODELS
from mmprompt.utils import (checkpoint_filter_fn, load_checkpoint_file,
                            original_format)

VARIANTS = ['kgcoop_word-init_w8', 'kgcoop_random8_w2', 'kgcoop_csc4_w1']
TOWERS = ['vit', 'rn']
TOL = 1e-5  # relative error, max |a - b| / max |b|


def rel_err(got: torch.Tensor, expected: torch.Tensor) -> float:
    got, expected = got.detach().double(), expected.detach().double()
    return float((got - expected).abs().max() / expected.abs().max())


def learner_options(options: dict, num_classes: int) -> dict:
    """The original's options in mmprompt's words: a true CTX_INIT is
    'a photo of a' there, whatever N_CTX says."""
    learner = dict(type='CoOpPromptLearner')
    if options['ctx_init']:
        learner.update(ctx_init='a photo of a')
    else:
        learner.update(n_ctx=options['n_ctx'])
    if options['csc']:
        learner.update(csc=True, num_classes=num_classes)
    return learner


class Golden:
    """One variant's files and the mmprompt model of its settings."""

    def __init__(self, root, tower: str, variant: str):
        self.folder = root / 'kgcoop' / f'tiny-{tower}' / variant
        models = root / f'tiny-{tower}'
        self.spec = json.loads((self.folder / 'options.json').read_text())
        self.inputs = torch.load(models / 'inputs.pt', weights_only=True)
        self.weights = str(models / 'openai_state_dict.pt')
        self.tower = tower

    def load(self, name: str):
        return torch.load(self.folder / name, weights_only=True)

    def model(self, **head):
        names = self.inputs['classnames']
        head = dict(
            type='KgCoOpHead',
            prompt_learner=learner_options(self.spec['options'], len(names)),
            templates=self.spec['dataset'],
            kg_weight=self.spec['options']['w'],
            **head)
        model = MODELS.build(
            dict(
                type='PromptClassifier',
                clip=dict(
                    type='OpenCLIP',
                    arch=f'mmprompt-tiny-{self.tower}',
                    pretrained=self.weights),
                head=head,
                class_names=names))
        original = load_checkpoint_file(self.folder / 'model.pth.tar-10')
        result = model.load_state_dict(
            checkpoint_filter_fn(original, model), strict=False)
        assert not result.unexpected_keys
        assert [
            k for k in result.missing_keys if not k.endswith('_extra_state')
        ] == []
        return model

    def batch(self):
        labels = self.load('train.pt')['labels']
        samples = [DataSample().set_gt_label(int(i)) for i in labels]
        return self.inputs['images'], samples


@pytest.fixture(
    params=[(t, v) for t in TOWERS for v in VARIANTS],
    ids=lambda p: f'{p[0]}-{p[1]}')
def golden(request, golden_dir):
    tower, variant = request.param
    return Golden(golden_dir, tower, variant)


def losses_of(model, images, samples):
    model.train()
    feats = model.extract_feat(images)
    return model.head.loss(feats, samples)


def test_logits_and_teacher_features(golden):
    model = golden.model()
    ctx = model.head.prompt_learner.ctx
    assert rel_err(ctx, golden.load('init.pt')['ctx']) > 1e-3  # the file's
    model.eval()
    with torch.no_grad():
        logits = model.head(model.extract_feat(golden.inputs['images']))
    assert rel_err(logits, golden.load('logits.pt')) <= TOL
    teacher = golden.load('text_features.pt')
    assert model.head.templates == [teacher['template']]
    assert [p for p in model.head.bank.prompts(golden.inputs['classnames'])
            ] == [teacher['prompts']]
    features = model.head.clip_text_features()
    assert rel_err(features, teacher['text_features']) <= TOL
    assert not features.requires_grad


@pytest.mark.parametrize('encoder',
                         ['PrefixCachedTextEncoder', 'PlainTextEncoder'])
def test_loss_terms_and_gradients(golden, encoder):
    model = golden.model(text_encoder=dict(type=encoder))
    head = model.head
    ctx = head.prompt_learner.ctx
    # the prefix-cached encoder runs the shared-context prompts (its own
    # fallback to the plain one takes the class-specific contexts)
    cached = encoder == 'PrefixCachedTextEncoder'
    assert head.text_encoder.__class__.__name__ == encoder
    if cached:
        assert head.text_encoder.applies(
            head.prompt_learner()) is not golden.spec['options']['csc']
    train = golden.load('train.pt')
    grads = golden.load('grads.pt')
    losses = losses_of(model, *golden.batch())
    assert set(losses) == {'loss', 'loss_kg'}
    w = train['w']
    assert model.head.kg_weight == w
    assert rel_err(losses['loss'], train['ce']) <= TOL
    score = losses['loss_kg'] / w
    assert rel_err(score, train['score']) <= TOL
    total = losses['loss'] + losses['loss_kg']
    assert rel_err(total, train['loss']) <= TOL
    ce_grad, = torch.autograd.grad(losses['loss'], ctx, retain_graph=True)
    kg_grad, = torch.autograd.grad(score, ctx, retain_graph=True)
    total_grad, = torch.autograd.grad(total, ctx)
    assert rel_err(ce_grad, grads['ce']['ctx']) <= TOL
    assert rel_err(kg_grad, grads['kg']['ctx']) <= TOL
    assert rel_err(total_grad, grads['total']['ctx']) <= TOL
    # the training logits are the evaluation ones (CLIP stays in eval mode)
    with torch.no_grad():
        logits = model(golden.inputs['images'])
    assert rel_err(logits, train['logits']) <= TOL


def sgd_steps(model, golden, lr, steps):
    step = golden.load('step.pt')
    ctx = model.head.prompt_learner.ctx
    optimizer = torch.optim.SGD(
        model.head.prompt_learner.parameters(),
        lr=lr,
        momentum=step['momentum'],
        weight_decay=step['weight_decay'],
        dampening=0,
        nesterov=False)
    applied = []
    for _ in range(steps):
        optimizer.zero_grad()
        losses = losses_of(model, *golden.batch())
        sum(losses.values()).backward()
        applied.append(ctx.grad.clone())
        optimizer.step()
    return step, applied


def test_sgd_steps(golden):
    model = golden.model()
    ctx = model.head.prompt_learner.ctx
    step, applied = sgd_steps(model, golden, lr=step_lr(golden), steps=2)
    assert rel_err(applied[0], step['applied_grad_step1']['ctx']) <= TOL
    assert rel_err(applied[1], step['applied_grad_step2']['ctx']) <= TOL
    assert rel_err(ctx, step['params_after_step2']['ctx']) <= TOL
    # step 1 alone, and the update it made (not only the parameters)
    model = golden.model()
    ctx = model.head.prompt_learner.ctx
    before = ctx.detach().clone()
    torch.testing.assert_close(before, step['params_before']['ctx'])
    sgd_steps(model, golden, lr=step['lr'], steps=1)
    assert rel_err(ctx, step['params_after_step1']['ctx']) <= TOL
    expected = step['params_after_step1']['ctx'] - before
    assert rel_err(ctx.detach() - before, expected) <= TOL


def step_lr(golden):
    return golden.load('step.pt')['lr']


def test_first_iteration_at_the_warmup_lr(golden):
    model = golden.model()
    ctx = model.head.prompt_learner.ctx
    step = golden.load('step.pt')
    sgd_steps(model, golden, lr=step['lr_first_iteration'], steps=1)
    # ~1e-6 of |p|: compared as parameters (fp32 rounding of p)
    assert rel_err(ctx, step['params_after_first_iteration']['ctx']) <= TOL


# ---------------------------------------------------------------------------
# Beyond the golden files
# ---------------------------------------------------------------------------
NAMES = ['cat', 'sea_lion', 'Apply_Eye_Makeup', 'tench']


@pytest.fixture(scope='module')
def tiny_clip():
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None))


def kgcoop(clip, names=NAMES, head=None, **learner):
    learner.setdefault('ctx_init', 'a photo of a')
    return MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(
                type='KgCoOpHead',
                prompt_learner=dict(type='CoOpPromptLearner', **learner),
                **(head or {})),
            class_names=names))


def tiny_batch(size=3):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(size, 3, 32, 32, generator=generator)
    samples = [DataSample().set_gt_label(i % 2) for i in range(size)]
    return images, samples


def test_teacher_features_once_per_set_of_classes(tiny_clip):
    model = kgcoop(tiny_clip)
    calls = []
    original = tiny_clip.encode_text_tokens

    def counting(tokens):
        calls.append(tokens.shape[0])
        return original(tokens)

    tiny_clip.encode_text_tokens = counting
    try:
        images, samples = tiny_batch()
        for _ in range(3):  # three training steps: the bank is computed once
            model(images, samples, mode='loss')
        assert calls == [len(NAMES)]
        model.eval()
        with torch.no_grad():
            model(images)  # evaluation needs no teacher
        assert calls == [len(NAMES)]
        first = model.head.clip_text_features()
        model.set_class_names(NAMES[:2])  # e.g. another training set
        model.train()
        model(images, samples, mode='loss')
        assert calls == [len(NAMES), 2]
        torch.testing.assert_close(model.head.clip_text_features(), first[:2])
    finally:
        del tiny_clip.encode_text_tokens


def test_the_term_is_half_the_squared_distance(tiny_clip):
    model = kgcoop(tiny_clip, head=dict(kg_weight=3.0))
    images, samples = tiny_batch()
    losses = model(images, samples, mode='loss')
    g = F.normalize(model.head.text_features(), dim=-1)
    w_clip = model.head.clip_text_features()
    expected = 3.0 * 0.5 * (g - w_clip).square().sum(-1).mean()
    torch.testing.assert_close(losses['loss_kg'], expected)
    # with w = 0 the loss is CoOp's
    coop = kgcoop(tiny_clip, head=dict(kg_weight=0))
    coop.load_state_dict(model.state_dict())
    losses = coop(images, samples, mode='loss')
    assert losses['loss_kg'].item() == 0
    with torch.no_grad():
        logits = coop(images)
    labels = torch.tensor([s.gt_label.item() for s in samples])
    torch.testing.assert_close(losses['loss'], F.cross_entropy(logits, labels))


def test_user_settings_the_original_ignores_are_honoured(tiny_clip):
    """The original takes any true CTX_INIT for 'a photo of a' and always
    puts the class name last: mmprompt does what the config says."""
    words = kgcoop(tiny_clip, ctx_init='a drawing of the')
    assert words.head.prompt_learner.prompt_prefix == 'a drawing of the'
    photo = kgcoop(tiny_clip)
    assert not torch.equal(words.head.prompt_learner.ctx,
                           photo.head.prompt_learner.ctx)
    images, samples = tiny_batch()
    front = kgcoop(
        tiny_clip, ctx_init='', n_ctx=4, class_token_position='front')
    end = kgcoop(tiny_clip, ctx_init='', n_ctx=4)
    end.load_state_dict(front.state_dict())
    with torch.no_grad():
        assert not torch.allclose(front(images), end(images))
    # both train: the term reaches the context in every layout
    for model in (front, end):
        losses = model(images, samples, mode='loss')
        grad, = torch.autograd.grad(losses['loss_kg'],
                                    model.head.prompt_learner.ctx)
        assert grad.abs().sum() > 0


@pytest.mark.parametrize('arch', ['mmprompt-tiny-vit', 'mmprompt-tiny-rn'])
def test_autocast_and_fp16(arch):
    """--amp (autocast) and the original's fp16 mode: the term is computed
    in fp32 and the context's gradient is finite."""
    torch.manual_seed(0)
    size = 64 if arch.endswith('rn') else 32
    images = torch.rand(2, 3, size, size)
    samples = [DataSample().set_gt_label(i) for i in (0, 1)]
    for precision, autocast in (('fp32', True), ('bf16', True), ('fp16',
                                                                 False)):
        clip = MODELS.build(
            dict(
                type='OpenCLIP',
                arch=arch,
                pretrained=None,
                precision=precision))
        model = kgcoop(clip)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            losses = model(images, samples, mode='loss')
        assert losses['loss_kg'].dtype == torch.float32
        sum(losses.values()).backward()
        grad = model.head.prompt_learner.ctx.grad
        assert grad is not None and torch.isfinite(grad).all()


@pytest.mark.parametrize('head,match', [
    (dict(templates='Textures'),
     "templates='Textures' is not a template .* the 'kgcoop' table"),
    (dict(templates='a photo of a cat'), 'not a template'),
    (dict(templates=[]), 'templates is empty'),
    (dict(templates=['a {} photo', 'no class']),
     "every template needs .*'no class'"),
    (dict(template_table='KgCoOp'), "table must be one of .* got 'KgCoOp'"),
    (dict(kg_weight=-1), 'kg_weight must be a number >= 0 .* got -1'),
    (dict(kg_weight='8'), "kg_weight must be a number >= 0 .* got '8'"),
    (dict(aggregation='mean'), 'aggregation must be one of'),
])
def test_bad_arguments_are_named(tiny_clip, head, match):
    with pytest.raises(ValueError, match=match):
        kgcoop(tiny_clip, head=head)


def test_converter_case(golden_dir):
    for path in sorted((golden_dir / 'kgcoop').glob('*/*/model.pth.tar-10')):
        original = load_checkpoint_file(path)
        assert original_format(original) == 'KgCoOp'
        converted = checkpoint_filter_fn(original)
        assert list(converted) == ['head.prompt_learner.ctx'], path
        assert converted['head.prompt_learner.ctx'] is original['state_dict'][
            'ctx']
    state = dict(original['state_dict'], prompt_bias=torch.zeros(1))
    with pytest.raises(
            ValueError, match="unexpected key 'prompt_bias' .* KgCoOp"):
        checkpoint_filter_fn(state)
