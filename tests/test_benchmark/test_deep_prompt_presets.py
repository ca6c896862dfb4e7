# Copyright (c) mmprompt contributors. All rights reserved.
"""benchmark.py's MaPLe and PromptSRC presets: the straightforward path is
the originals' computation (77-token prompts per class, PromptSRC's second
frozen CLIP as its teacher), both paths agree before anything is timed, and
the script runs end to end. No timing is asserted."""
import importlib.util
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import pytest
import torch

from mmprompt.models import PlainTextEncoder, PrefixCachedTextEncoder
from mmprompt.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'analysis_tools' / 'benchmark.py'
CLASSES = ['cat', 'dog', 'sea_lion', 'golden_retriever']
MAPLE = dict(
    type='DeepPromptHead',
    prompt_learner=dict(type='MaPLePromptLearner', n_ctx=2, depth=2))
PROMPTSRC = dict(
    type='PromptSRCHead',
    prompt_learner=dict(
        type='IVLPPromptLearner',
        n_ctx=4,
        text_depth=2,
        n_vision_ctx=4,
        vision_depth=2))
TINY = {
    'maple': {
        'model.clip.arch': 'mmprompt-tiny-vit',
        'model.head.prompt_learner.depth': 2
    },
    'promptsrc': {
        'model.clip.arch': 'mmprompt-tiny-vit',
        'model.head.prompt_learner.text_depth': 2,
        'model.head.prompt_learner.vision_depth': 2
    },
}
CONFIG = '''\
default_scope = 'mmprompt'
model = dict(
    type='PromptClassifier',
    clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
    head={head!r})
test_dataloader = dict(batch_size=3)
'''


@pytest.fixture(scope='module')
def tool():
    name = 'tools_analysis_tools_benchmark'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOL)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def build(head: dict):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
            head=head,
            class_names=CLASSES))
    with torch.no_grad():  # prompts far from their init
        for p in model.head.prompt_learner.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def setting(**kwargs) -> dict:
    values = dict(
        name='tiny',
        device='cpu',
        classes=len(CLASSES),
        seed=0,
        amp=False,
        train_batch=2,
        test_batch=2,
        images=3,
        warmup=1,
        steps=2,
        rtol=2**-9)
    values.update(kwargs)
    return values


@pytest.mark.parametrize('method', ['maple', 'promptsrc'])
def test_presets(tool, method):
    settings = {
        s['name']: s
        for s in tool.settings_of(tool.parse_args(['--preset', 'all']))
    }
    train, test = settings[f'{method}-train'], settings[f'{method}-eval']
    for s in (train, test):
        assert s['config'].endswith(f'configs/_base_/models/{method}.py')
        assert s['classes'] == 50 and s['rtol'] == 2**-9
        assert not s.get('baseline')  # two paths of one model
    assert (train['mode'], train['train_batch'], train['speed_target'],
            train['memory_target']) == ('train', 4, 2.0, 1.0)
    assert (test['mode'], test['test_batch'], test['images']) == ('test', 4,
                                                                  20)
    model, _ = tool.build_model(dict(train, cfg_options=TINY[method]))
    head = 'PromptSRCHead' if method == 'promptsrc' else 'DeepPromptHead'
    assert type(model.head).__name__ == head
    # Other presets keep the default tolerance.
    assert settings['cocoop-eval']['rtol'] == tool.RTOL


def test_promptsrc_straightforward_is_the_originals(tool):
    """A second frozen CLIP whose image tower runs every step without
    prompts and whose template bank is computed once, 77-token prompts;
    mmprompt's path: the one CLIP, prompted and unprompted, and the
    prefix-cached encoder."""
    model = build(PROMPTSRC)
    paths = tool.Paths(model)
    copy_ = paths.settings['straightforward']['zero_shot']
    assert copy_.clip is not model.clip and copy_.mib > 0
    for a, b in zip(copy_.clip.model.parameters(),
                    model.clip.model.parameters()):
        assert a is not b and torch.equal(a, b)
    assert paths.settings['mmprompt']['zero_shot'] is None
    params = [p for p in model.parameters() if p.requires_grad]
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
    optimizer = torch.optim.SGD(params, lr=0.002)
    counts = {}
    for path in tool.PATHS:
        paths.use(path).train()
        with mock.patch.object(
                copy_.clip, 'encode_image',
                wraps=copy_.clip.encode_image) as second, mock.patch.object(
                    model.clip, 'encode_image',
                    wraps=model.clip.encode_image) as first:
            for _ in range(2):
                paths.train_step(images, labels, optimizer, nullcontext)
        counts[path] = (first.call_count, second.call_count)
        if path == 'straightforward':
            assert type(model.head.text_encoder) is PlainTextEncoder
            assert not model.head.text_encoder.cut_after_eot
            assert 'zero_shot_image_features' in model.head.__dict__
    # per step: the prompted pass (and on mmprompt's path the zero-shot one)
    assert counts == dict(mmprompt=(4, 0), straightforward=(2, 2))
    paths.use('mmprompt')
    assert 'zero_shot_image_features' not in model.head.__dict__
    assert type(model.head.text_encoder) is PrefixCachedTextEncoder


@pytest.mark.parametrize('head', [MAPLE, PROMPTSRC])
def test_check_agreement(tool, head):
    paths = tool.Paths(build(head))
    found = tool.check_agreement(paths, setting(), ['train', 'test'])
    assert 'test logits' in found and 'train loss' in found
    if head is PROMPTSRC:
        assert {'train loss_scl_text', 'train loss_scl_logits'} <= set(found)
    grads = [k for k in found if k.startswith('gradient of')]
    assert len(grads) >= 4
    assert max(found.values()) <= 2**-9
    # The values agree far closer than the fp16-rounded gradients.
    assert found['test logits'] <= 1e-5


def test_check_agreement_catches_another_teacher(tool):
    """A teacher CLIP that differs from the model's is caught."""
    paths = tool.Paths(build(PROMPTSRC))
    copy_ = paths.settings['straightforward']['zero_shot']
    with torch.no_grad():
        conv = copy_.clip.model.visual.conv1.weight
        conv.add_(0.5 * conv.std() * torch.randn_like(conv))
    with pytest.raises(AssertionError, match='differ'):
        tool.check_agreement(paths, setting(), ['train'])


def test_promptsrc_end_to_end(tool, tmp_path, capsys):
    config = tmp_path / 'promptsrc.py'
    config.write_text(CONFIG.format(head=PROMPTSRC))
    out = tmp_path / 'results.json'
    tool.main([
        str(config), '--classes', '3', '--batch', '2', '--mode', 'train',
        '--steps', '1', '--warmup', '0', '--no-isolate', '--skip-check',
        '--out',
        str(out)
    ])
    (record, ) = json.loads(out.read_text())['records']
    assert record['method'] == 'PromptSRCHead'
    assert record['teacher_copy_mib'] > 0
    (row, ) = record['rows']
    assert row['speedup'] > 0
