# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/analysis_tools/benchmark.py: both paths compute the same logits,
and the script runs end to end. No timing is asserted."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from mmprompt.registry import MODELS

TOOL = (
    Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' /
    'benchmark.py')
CLASSES = ['cat', 'dog', 'sea_lion', 'golden_retriever']

CONFIG = '''\
default_scope = 'mmprompt'
model = dict(
    type='PromptClassifier',
    clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit',
              pretrained='not/a/file.pt'),
    head={head!r})
test_dataloader = dict(batch_size=3)
'''

COCOOP = dict(
    type='CoCoOpHead',
    prompt_learner=dict(type='CoCoOpPromptLearner', ctx_init='a photo of a'))
HEADS = {
    'cocoop-init':
    COCOOP,
    'cocoop-random':
    dict(
        type='CoCoOpHead',
        prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=5),
        prefix_cache=False,
        text_chunk_size=3),
    'coop-end':
    dict(
        type='CoOpHead',
        prompt_learner=dict(type='CoOpPromptLearner', n_ctx=4)),
    'coop-init-chunked':
    dict(
        type='CoOpHead',
        prompt_learner=dict(type='CoOpPromptLearner', ctx_init='a photo of'),
        text_chunk_size=2,
        grad_checkpointing=True),
    'coop-csc':
    dict(
        type='CoOpHead',
        prompt_learner=dict(
            type='CoOpPromptLearner',
            n_ctx=4,
            csc=True,
            num_classes=len(CLASSES))),
    'coop-middle':
    dict(
        type='CoOpHead',
        prompt_learner=dict(
            type='CoOpPromptLearner', n_ctx=4, class_token_position='middle')),
    'coop-front':
    dict(
        type='CoOpHead',
        prompt_learner=dict(
            type='CoOpPromptLearner', n_ctx=3, class_token_position='front')),
    'zeroshot-ensemble':
    dict(type='ZeroShotHead', templates='imagenet-7'),
}


@pytest.fixture(scope='module')
def tool():
    name = 'tools_analysis_tools_benchmark'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOL)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def build(head: dict, classes=CLASSES, seed: int = 0):
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
            head=head,
            class_names=classes))
    with torch.no_grad():  # a context far from the init words
        learner = getattr(model.head, 'prompt_learner', None)
        if learner is not None:
            learner.ctx.add_(torch.randn_like(learner.ctx))
    return model.eval()


@pytest.mark.parametrize('head', sorted(HEADS))
def test_straightforward_logits_equal_mmprompt(tool, head):
    model = build(HEADS[head])
    straight = tool.Straightforward(model)
    images = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 3, 1])

    # evaluation, twice: mmprompt's cached CoOp features must not differ
    with torch.no_grad():
        for _ in range(2):
            fast, slow = model(images), straight(images)
            assert fast.shape == slow.shape == (3, len(CLASSES))
            torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)

    if head.startswith('zeroshot'):
        return
    # training: same loss and gradients
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    assert params
    grads = []
    for path in ('mmprompt', 'straightforward'):
        for p in params:
            p.grad = None
        loss = tool.loss_fn(path, model, straight)(images, labels)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in params]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-4, atol=0)
    for fast, slow in zip(grads[0][1], grads[1][1]):
        assert slow.abs().max() > 0
        torch.testing.assert_close(
            fast, slow, rtol=1e-4, atol=1e-4 * float(slow.abs().max()))


def test_straightforward_path_is_full_length_and_per_image(tool):
    """The reference does what the original does: 77 tokens, one text call
    per image for CoCoOp, one per forward for CoOp."""
    model = build(COCOOP)
    straight = tool.Straightforward(model)
    calls = []
    encode = straight.encode_text
    straight.encode_text = lambda p, t: calls.append(p.shape) or encode(p, t)
    with torch.no_grad():
        straight(torch.randn(3, 3, 32, 32))
    assert calls == [(len(CLASSES), 77, 64)] * 3


def test_check_agreement_catches_a_difference(tool):
    model = build(COCOOP)
    straight = tool.Straightforward(model)
    setting = dict(
        train_batch=2,
        test_batch=2,
        classes=len(CLASSES),
        device='cpu',
        seed=0)
    found = tool.check_agreement(model, straight, setting, ['train', 'test'])
    assert set(found) >= {'test logits', 'train loss', 'gradient 0'}
    assert max(found.values()) <= tool.RTOL
    # a path that scores other prompts is refused
    straight.token_suffix = straight.token_suffix.flip(0)
    with pytest.raises(AssertionError, match='differ'):
        tool.check_agreement(model, straight, setting, ['test'])


def test_presets(tool):
    settings = tool.settings_of(tool.parse_args(['--preset', 'all']))
    by_name = {s['name']: s for s in settings}
    assert set(by_name) == {
        'cocoop-train-m4', 'cocoop-train-m16', 'cocoop-eval', 'coop-eval-1k'
    }
    m4 = by_name['cocoop-train-m4']
    assert (m4['classes'], m4['train_batch'], m4['mode']) == (50, 4, 'train')
    assert m4['memory_target'] == pytest.approx(1 / 3)
    assert by_name['cocoop-train-m16']['cfg_options'][
        'model.head.prompt_learner.n_ctx'] == 16
    coop = by_name['coop-eval-1k']
    assert (coop['classes'], coop['images'], coop['test_batch']) == (1000, 200,
                                                                     100)
    assert coop['cfg_options']['model.clip.arch'] == 'ViT-B-32'
    # the command line still applies
    args = tool.parse_args(['--preset', 'cocoop-eval', '--steps', '3'])
    assert tool.settings_of(args)[0]['steps'] == 3
    with pytest.raises(SystemExit):
        tool.parse_args(['--preset', 'all', 'configs/coop_vit-b16.py'])


def test_paths_are_timed_in_turn(tool, monkeypatch):
    """One step of each path per round, so that a slow spell of a shared
    machine slows both paths and not the one that ran during it."""
    model = build(COCOOP)
    calls = []

    class Recorded(tool._Phase):

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            step = self.step
            self.step = lambda: calls.append(self.path) or step()

    monkeypatch.setattr(tool, '_Phase', Recorded)
    setting = dict(
        name='tiny',
        device='cpu',
        classes=len(CLASSES),
        seed=0,
        amp=False,
        train_batch=2,
        warmup=1,
        steps=3)
    results = tool.measure_time(model, setting, tool.PATHS, 'train')
    assert calls == list(tool.PATHS) * 3
    for path in tool.PATHS:
        assert len(results[path]['seconds']) == 3
        assert results[path]['images_per_s'] > 0
        # only the encode_image calls of the timed steps, all nonzero
        assert all(t > 0 for t in results[path]['image_tower_seconds'])


def _config(tmp_path: Path, head: dict) -> str:
    path = tmp_path / f"{head['type']}.py"
    path.write_text(CONFIG.format(head=head))
    return str(path)


def _check_output(out: dict, table: str, modes) -> None:
    (record, ) = out['records']
    assert record['modes'] == list(modes)
    assert max(record['agreement'].values()) <= 1e-4
    assert {(r['path'], r['mode'])
            for r in record['results']} == {(p, m)
                                            for p in ('mmprompt',
                                                      'straightforward')
                                            for m in modes}
    for result in record['results']:
        assert result['images_per_s'] > 0
        assert result['peak_mib'] >= 0
        assert len(result['seconds']) == 1
    assert [row['mode'] for row in record['rows']] == list(modes)
    for row in record['rows']:
        assert row['speedup'] > 0
        assert len(row['round_speedups']) == 1
        assert 'memory_ratio' in row
    blocks = [block.splitlines() for block in table.split('\n\n')]
    assert blocks[0][0].startswith('Measured ')
    comparison, steps = blocks[1:]
    assert len(comparison) == 2 + len(modes)
    assert 'speed-up' in comparison[0] and 'memory ratio' in comparison[0]
    for line, mode in zip(comparison[2:], modes):
        assert f'| {mode} |' in line and '×' in line
    assert len(steps) == 2 + 2 * len(modes)
    assert 'image tower s' in steps[0]


@pytest.mark.parametrize('head', ['cocoop', 'coop'])
def test_end_to_end_in_process(tool, tmp_path, capsys, head):
    config = _config(tmp_path,
                     COCOOP if head == 'cocoop' else HEADS['coop-end'])
    out = tmp_path / 'results.json'
    tool.main([
        config, '--classes', '3', '--batch', '2', '--images', '4', '--steps',
        '1', '--warmup', '0', '--no-isolate', '--markdown', '--out',
        str(out)
    ])
    table = capsys.readouterr().out
    results = json.loads(out.read_text())
    _check_output(results, table, ('train', 'test'))
    record = results['records'][0]
    assert record['method'] == head and record['test_batch'] == 2
    assert record['pretrained'] is False  # the config's file is not read


def test_end_to_end_in_subprocesses(tool, tmp_path, capsys):
    """Each phase in a fresh process, as the default; zero-shot has only
    an evaluation."""
    config = _config(tmp_path, HEADS['zeroshot-ensemble'])
    out = tmp_path / 'results.json'
    tool.main([
        config, '--classes', '3', '--images', '5', '--steps', '1', '--warmup',
        '1', '--threads', '1', '--profile',
        str(tmp_path / 'profile'), '--out',
        str(out)
    ])
    table = capsys.readouterr().out
    results = json.loads(out.read_text())
    _check_output(results, table, ('test', ))
    record = results['records'][0]
    assert record['test_batch'] == 3  # the config's
    assert all(r['threads'] == 1 for r in record['results'])
    assert sorted(p.name for p in (tmp_path / 'profile').iterdir()) == [
        'ZeroShotHead_test_mmprompt.txt',
        'ZeroShotHead_test_straightforward.txt'
    ]
