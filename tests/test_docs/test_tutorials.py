# Copyright (c) mmprompt contributors. All rights reserved.
"""The code of the docs runs, and does what the docs say it does.

A python block of ``docs/**/*.md`` is taken when the line above its fence is
an HTML comment (invisible when rendered)::

    <!-- docs-test: file my_prompt.py -->   write the block to that path
    <!-- docs-test: run -->                 run it (after every file is
                                            written, that folder on the path)
    <!-- docs-test: skip -->                not run (a fragment)

Every python block of ``docs/tutorials`` carries one, so that a new block
cannot go untested by accident. The files go into one temporary folder laid
out as the repository (a copy of ``configs/`` beside them), which is put on
``sys.path``, as a reader's repository root with ``PYTHONPATH=.``. The tests
below then check the tutorials' claims on the tiny CLIP: gates of 1 give
CoOp's logits exactly, the CLIP of add_backbone.md gives OpenCLIP's features,
the configs merge into what the text says, and forward and backward run.
"""
import importlib
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import open_clip
import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from mmprompt.models import OpenCLIP, PlainTextEncoder, PrefixCachedTextEncoder
from mmprompt.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / 'docs'
TUTORIALS = DOCS / 'tutorials'
ACTIONS = ('file', 'run', 'skip')
_MARKER = re.compile(r'^<!--\s*docs-test:\s*(\S+)\s*(\S*)\s*-->$')
_FENCE = re.compile(r'^(`{3,})\s*(\S*)')

CLASSES = ['cat', 'dog', 'sea_lion', 'red square', 'golden retriever']
DEMO = 'configs/demo/{}_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py'
GATED = 'configs/my/gated_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py'
MY_CLIP_CFG = ('configs/my/cocoop_my-clip_shapes_1xb4-ep10_base2new-16shot-'
               'shapes.py')
VIT_L = ('configs/cocoop/cocoop_vit-large-p14_clip-openai_1xb1-ep10_'
         'base2new-16shot-dtd.py')
DTD = ('configs/cocoop/cocoop_vit-base-p16_clip-openai_1xb1-ep10_'
       'base2new-16shot-dtd.py')
MINE = 'configs/mine/coop_vit-base-p16_clip-openai_1xb32-ep200_16shot-mine.py'


@dataclass
class Block:
    """A fenced code block of a markdown file."""
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    action: Optional[str] = None
    arg: str = ''

    def __str__(self) -> str:
        return f'{self.doc.relative_to(ROOT)}:{self.line}'


def read_blocks(doc: Path) -> List[Block]:
    """The fenced blocks of ``doc`` with the marker above each, if any."""
    lines = doc.read_text(encoding='utf-8').splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith(fence.group(1)):
            end += 1
        if end == len(lines):
            raise AssertionError(f'{doc}:{i + 1}: unclosed code block')
        block = Block(doc, i + 1, fence.group(2),
                      '\n'.join(lines[i + 1:end]) + '\n')
        above = lines[i - 1].strip() if i else ''
        marker = _MARKER.match(above)
        if marker:
            block.action, block.arg = marker.groups()
        elif above.startswith('<!--') and 'docs-test' in above:
            raise AssertionError(f'{block}: malformed marker {above!r}')
        blocks.append(block)
        i = end + 1
    return blocks


def all_blocks() -> List[Block]:
    return [b for doc in sorted(DOCS.rglob('*.md')) for b in read_blocks(doc)]


def marked(action: str) -> List[Block]:
    return [b for b in all_blocks() if b.action == action]


def test_markers_are_well_formed():
    for doc in sorted(DOCS.rglob('*.md')):
        lines = doc.read_text(encoding='utf-8').splitlines()
        for i, line in enumerate(lines):
            if 'docs-test' not in line:
                continue
            assert _MARKER.match(line.strip()), f'{doc}:{i + 1}: {line!r}'
            after = lines[i + 1] if i + 1 < len(lines) else ''
            assert after.startswith('```python'), (
                f'{doc}:{i + 1}: a docs-test marker must be right above a '
                f'```python fence, got {after!r}')
    for block in all_blocks():
        if block.action is None:
            continue
        assert block.action in ACTIONS, f'{block}: {block.action!r}'
        assert bool(block.arg) == (block.action == 'file'), (
            f'{block}: only "file" takes an argument (a relative path)')


def test_every_tutorial_block_is_marked():
    """A python block in a tutorial is run or says why not."""
    unmarked = [
        str(b) for doc in sorted(TUTORIALS.glob('*.md'))
        for b in read_blocks(doc) if b.lang == 'python' and b.action is None
    ]
    assert not unmarked, (
        f'python blocks without a <!-- docs-test: file PATH|run|skip --> '
        f'marker: {unmarked}')


@pytest.fixture(scope='module')
def doc_root(tmp_path_factory) -> Path:
    """A folder laid out as the repository with every ``file`` block of the
    docs written in it, on ``sys.path``; the modules are imported."""
    root = tmp_path_factory.mktemp('docs')
    shutil.copytree(ROOT / 'configs', root / 'configs')
    written: Dict[str, Block] = {}
    for block in marked('file'):
        assert block.arg not in written, (
            f'{block} and {written[block.arg]} both write {block.arg}')
        path = root / block.arg
        assert root in path.resolve().parents, f'{block}: {block.arg}'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code, encoding='utf-8')
        written[block.arg] = block
    sys.path.insert(0, str(root))
    try:
        for name in written:
            if '/' not in name and name.endswith('.py'):
                importlib.import_module(name[:-3])
        yield root
    finally:
        sys.path.remove(str(root))


@pytest.fixture(scope='module')
def clip() -> OpenCLIP:
    torch.manual_seed(0)
    return OpenCLIP('mmprompt-tiny-vit', pretrained=None)


def _samples(labels: List[int]) -> List[DataSample]:
    return [DataSample().set_gt_label(label) for label in labels]


def _build(model_cfg, clip) -> torch.nn.Module:
    """A config's model with the given CLIP instead of the config's."""
    return MODELS.build(dict(model_cfg, clip=clip, class_names=CLASSES))


@pytest.mark.parametrize(
    'block', marked('run'), ids=lambda b: f'{b.doc.stem}:{b.line}')
def test_run_blocks(block, doc_root):
    code = compile(block.code, str(block), 'exec')
    exec(code, {'__name__': f'docs_test_{block.doc.stem}_{block.line}'})


# ---------------------------------------------------------------------------
# tutorials/add_prompt_learner.md
# ---------------------------------------------------------------------------
def test_gated_config_plugs_the_learner_into_coop_head(doc_root):
    cfg = Config.fromfile(doc_root / GATED)  # imports my_prompt
    base = Config.fromfile(doc_root / DEMO.format('coop'))
    assert cfg.model.head.type == 'CoOpHead'
    assert cfg.model.head.prompt_learner == dict(
        type='GatedPromptLearner', n_ctx=4, ctx_init='a photo of a')
    assert 'my_prompt' in cfg.custom_imports.imports
    # everything else is the demo's CoOp
    for key in ('train_dataloader', 'test_dataloader', 'train_cfg',
                'optim_wrapper', 'param_scheduler'):
        assert cfg[key] == base[key], key
    assert cfg.model.clip == base.model.clip


def test_gates_of_one_give_coop_logits(doc_root, clip):
    gated = _build(Config.fromfile(doc_root / GATED).model, clip)
    coop = _build(Config.fromfile(doc_root / DEMO.format('coop')).model, clip)
    learner = gated.head.prompt_learner
    assert type(learner).__name__ == 'GatedPromptLearner'
    assert torch.equal(learner.ctx, coop.head.prompt_learner.ctx)
    images = torch.rand(3, 3, 32, 32)
    logits = gated(images)
    assert logits.shape == (3, len(CLASSES))
    assert torch.equal(logits, coop(images))  # exactly CoOp's
    # the gate is a term of the method: another value changes the logits
    with torch.no_grad():
        learner.gate[1] = 0.5
    assert not torch.allclose(gated(images), coop(images), atol=1e-4)


def test_gated_learner_trains_and_saves_only_its_tensors(doc_root, clip):
    model = _build(Config.fromfile(doc_root / GATED).model, clip)
    learner = model.head.prompt_learner
    losses = model(
        torch.rand(4, 3, 32, 32), _samples([0, 1, 2, 4]), mode='loss')
    losses['loss'].backward()
    for name in ('ctx', 'gate'):
        grad = getattr(learner, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'head.prompt_learner.ctx', 'head.prompt_learner.gate'}
    assert set(model.state_dict()) == trainable | {
        'head.prompt_learner._extra_state'
    }
    assert learner.gate.shape == (learner.n_ctx, 1)


def test_gated_prompts_take_the_prefix_cached_path(doc_root, clip):
    model = _build(Config.fromfile(doc_root / GATED).model, clip)
    head = model.head
    with torch.no_grad():
        head.prompt_learner.gate.uniform_(0.5, 1.5)
    prompts = head.prompt_learner()
    assert isinstance(head.text_encoder, PrefixCachedTextEncoder)
    assert prompts.shared_prefix == 1 + head.prompt_learner.n_ctx
    assert head.text_encoder.applies(prompts)
    torch.testing.assert_close(
        head.text_encoder(prompts),
        PlainTextEncoder(clip)(prompts),
        rtol=1e-5,
        atol=1e-5)


def test_coop_head_cache_sees_the_gate(doc_root, clip):
    """'CoOpHead keeps the text features until the class names or a
    parameter of the learner (the gate included) change'."""
    model = _build(Config.fromfile(doc_root / GATED).model, clip).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = model(images)
        model.head.prompt_learner.gate[0] = 2.0
        after = model(images)
    assert not torch.allclose(before, after, atol=1e-4)


def test_text_encoder_options(doc_root, clip):
    """The memory options as the tutorial writes them, and the deprecated
    head keys."""
    cfg = Config.fromfile(doc_root / GATED)
    cfg.merge_from_dict({'model.head.text_encoder.text_chunk_size': 256})
    encoder = _build(cfg.model, clip).head.text_encoder
    assert isinstance(encoder, PrefixCachedTextEncoder)
    assert encoder.text_chunk_size == 256
    cfg = Config.fromfile(doc_root / GATED)
    cfg.merge_from_dict({
        'model.head.text_chunk_size': 256,
        'model.head.prefix_cache': False
    })
    with pytest.warns(FutureWarning, match='text encoder'):
        encoder = _build(cfg.model, clip).head.text_encoder
    assert type(encoder) is PlainTextEncoder
    assert encoder.text_chunk_size == 256


def _coop_model(clip, learner: dict, **head) -> torch.nn.Module:
    return MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(type='CoOpHead', prompt_learner=learner, **head),
            class_names=CLASSES))


def test_deep_text_prompts(doc_root, clip):
    learner = dict(
        type='DeepTextPromptLearner',
        depth=2,
        n_ctx=4,
        ctx_init='a photo of a')
    model = _coop_model(clip, learner)
    deep = model.head.prompt_learner
    assert deep.deep_ctx.shape == (1, 4, clip.width)
    prompts = deep()
    assert set(prompts.text_rows) == {1}
    # the rows sit in the context positions: the fast path stays exact
    assert model.head.text_encoder.applies(prompts)
    torch.testing.assert_close(
        model.head.text_encoder(prompts),
        PlainTextEncoder(clip)(prompts),
        rtol=1e-5,
        atol=1e-5)
    # the rows reach the tower: not CoOp's logits, and they learn
    coop = _coop_model(
        clip, dict(type='CoOpPromptLearner', n_ctx=4, ctx_init='a photo of a'))
    images = torch.rand(3, 3, 32, 32)
    assert not torch.allclose(model(images), coop(images), atol=1e-4)
    model(images, _samples([0, 1, 2]), mode='loss')['loss'].backward()
    assert deep.deep_ctx.grad.abs().sum() > 0
    assert deep.ctx.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='depth must be in 1..2'):
        _coop_model(clip, dict(learner, depth=3))


def test_anchored_head(doc_root, clip):
    learner = dict(type='CoOpPromptLearner', n_ctx=4, ctx_init='a photo of a')
    model = _coop_model(clip, learner)
    anchored = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=clip,
            head=dict(
                type='AnchoredCoOpHead', prompt_learner=learner, weight=8.0),
            class_names=CLASSES))
    images, samples = torch.rand(4, 3, 32, 32), _samples([0, 1, 2, 3])
    losses = anchored(images, samples, mode='loss')
    assert set(losses) == {'loss', 'loss_anchor'}
    # the cross-entropy is CoOp's
    assert torch.equal(losses['loss'],
                       model(images, samples, mode='loss')['loss'])
    # the context starts as the template's words: the prompts are the
    # hand-written ones and the regulariser is zero
    assert losses['loss_anchor'].abs() < 1e-4
    with torch.no_grad():
        anchored.head.prompt_learner.ctx.add_(
            0.1 * torch.randn_like(anchored.head.prompt_learner.ctx))
    losses = anchored(images, samples, mode='loss')
    assert losses['loss_anchor'] > 1e-3
    losses['loss_anchor'].backward()
    assert anchored.head.prompt_learner.ctx.grad.abs().sum() > 0


# ---------------------------------------------------------------------------
# tutorials/add_backbone.md
# ---------------------------------------------------------------------------
def test_vit_l_config(doc_root):
    cfg = Config.fromfile(doc_root / VIT_L)
    base = Config.fromfile(doc_root / DTD)
    assert cfg.model.clip == dict(
        type='OpenCLIP', arch='ViT-L-14', pretrained='openai')
    rest, base_rest = dict(cfg.model), dict(base.model)
    del rest['clip'], base_rest['clip']
    assert rest == base_rest
    assert 'openai' in open_clip.list_pretrained_tags_by_model('ViT-L-14')
    # the pipeline steps the tutorial's --cfg-options for 336 px name
    for loader in ('train', 'val', 'test'):
        pipeline = cfg[f'{loader}_dataloader'].dataset.pipeline
        assert pipeline[1].scale == 224, loader
        if loader != 'train':
            assert pipeline[2].type == 'CenterCrop'
            assert pipeline[2].crop_size == 224


@pytest.fixture(scope='module')
def clips(doc_root):
    """``MyCLIP`` and an ``OpenCLIP`` with the same weights."""
    my_clip = MODELS.build(dict(type='MyCLIP'))
    ref = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
    ref.model.load_state_dict(my_clip.model.state_dict())
    return my_clip, ref


def test_my_clip_gives_openclip_features(clips):
    my_clip, ref = clips
    for name in ('width', 'embed_dim', 'context_length', 'dtype', 'device',
                 'truncate_text'):
        assert getattr(my_clip, name) == getattr(ref, name), name
    texts = ['a photo of a dog.', 'a photo of a golden retriever.']
    tokens = my_clip.tokenize(texts)
    assert torch.equal(tokens, ref.tokenize(texts))
    assert torch.equal(
        my_clip.eot_positions(tokens), ref.eot_positions(tokens))
    assert my_clip.bpe_encode('sea lion') == ref.bpe_encode('sea lion')
    torch.testing.assert_close(
        my_clip.encode_text_tokens(tokens), ref.encode_text_tokens(tokens))
    images = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(
        my_clip.encode_image(images),
        ref.encode_image(images),
        rtol=1e-5,
        atol=1e-5)
    # prompt embeddings with deep rows, cut after the EOT or not
    embeddings = torch.randn(2, 77, my_clip.width)
    eot = torch.tensor([9, 12])
    overwrite = {
        0: (1, torch.randn(3, my_clip.width)),
        1: (2, torch.randn(2, 4, my_clip.width))
    }
    for truncate in (None, False):
        torch.testing.assert_close(
            my_clip.encode_text(embeddings, eot, overwrite, truncate),
            ref.encode_text(embeddings, eot, overwrite, truncate),
            rtol=1e-5,
            atol=1e-5)


@pytest.mark.parametrize('method', ['coop', 'cocoop'])
@pytest.mark.parametrize('fast_path', [True, False])
def test_my_clip_in_a_classifier(doc_root, clips, method, fast_path):
    my_clip, ref = clips
    if not fast_path:  # a CLIP without the optional text-tower parts

        class Bare(type(my_clip)):
            text_blocks = None

        bare = Bare()
        bare.model.load_state_dict(my_clip.model.state_dict())
        my_clip = bare
    model_cfg = Config.fromfile(doc_root / DEMO.format(method)).model
    mine = _build(model_cfg, my_clip)
    theirs = _build(model_cfg, ref)
    theirs.load_state_dict(mine.state_dict())
    encoder = mine.head.text_encoder
    assert isinstance(encoder, PrefixCachedTextEncoder)
    assert encoder.tower_supported == fast_path
    images, samples = torch.rand(3, 3, 32, 32), _samples([0, 1, 4])
    torch.testing.assert_close(
        mine(images), theirs(images), rtol=1e-5, atol=1e-5)
    mine(images, samples, mode='loss')['loss'].backward()
    theirs(images, samples, mode='loss')['loss'].backward()
    grad = mine.head.prompt_learner.ctx.grad
    assert grad.abs().sum() > 0
    torch.testing.assert_close(
        grad, theirs.head.prompt_learner.ctx.grad, rtol=1e-4, atol=1e-5)


def test_my_clip_config(doc_root):
    cfg = Config.fromfile(doc_root / MY_CLIP_CFG)  # imports my_clip
    demo = Config.fromfile(doc_root / DEMO.format('cocoop'))
    assert cfg.model.clip == dict(demo.model.clip, type='MyCLIP')
    assert cfg.model.head == demo.model.head
    model_cfg = cfg.model.to_dict()
    model_cfg['clip'] = dict(model_cfg['clip'], pretrained=None)
    model = MODELS.build(dict(model_cfg, class_names=CLASSES))
    assert type(model.clip).__name__ == 'MyCLIP'
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, len(CLASSES))
    assert not list(model.clip.parameters())  # off the module tree


# ---------------------------------------------------------------------------
# tutorials/custom_dataset.md
# ---------------------------------------------------------------------------
def test_custom_dataset_config(doc_root):
    """'The inherited split, num_shots=16, seed, subsample_classes and
    pipelines stay'."""
    cfg = Config.fromfile(doc_root / MINE)
    base = Config.fromfile(doc_root / 'configs/coop_vit-b16.py')
    for loader in ('train', 'val', 'test'):
        dataset = cfg[f'{loader}_dataloader'].dataset
        inherited = base[f'{loader}_dataloader'].dataset
        assert dataset.type == 'SplitJsonDataset'
        assert (dataset.data_root, dataset.split_file,
                dataset.image_dir) == ('data/mine', 'split.json', 'images')
        for key in ('split', 'num_shots', 'seed', 'subsample_classes',
                    'pipeline'):
            assert dataset[key] == inherited[key], (loader, key)
    assert cfg.train_dataloader.dataset.num_shots == 16
