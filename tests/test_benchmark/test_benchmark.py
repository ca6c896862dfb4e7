# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/analysis_tools/benchmark.py: its two paths are one model's, they
are checked to agree, and the script runs end to end. No timing is
asserted."""
import importlib.util
import json
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn as nn

from mmprompt.models import PlainTextEncoder, PrefixCachedTextEncoder
from mmprompt.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'analysis_tools' / 'benchmark.py'
CLASSES = ['cat', 'dog', 'sea_lion', 'golden_retriever']

COCOOP = dict(
    type='CoCoOpHead',
    prompt_learner=dict(type='CoCoOpPromptLearner', ctx_init='a photo of a'))
COOP = dict(
    type='CoOpHead', prompt_learner=dict(type='CoOpPromptLearner', n_ctx=4))
HEADS = {
    'cocoop':
    COCOOP,
    'cocoop-random-chunked':
    dict(
        type='CoCoOpHead',
        prompt_learner=dict(type='CoCoOpPromptLearner', n_ctx=5),
        text_encoder=dict(
            type='PrefixCachedTextEncoder',
            text_chunk_size=3,
            grad_checkpointing=True)),
    'coop':
    COOP,
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
}

CONFIG = '''\
default_scope = 'mmprompt'
model = dict(
    type='PromptClassifier',
    clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit',
              pretrained='not/a/file.pt'),
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
    with torch.no_grad():  # a context far from the init words
        ctx = model.head.prompt_learner.ctx
        ctx.add_(torch.randn_like(ctx))
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
        steps=2)
    values.update(kwargs)
    return values


class Rolled(nn.Module):
    """A broken text encoder: each class gets another class's feature."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, prompts):
        return self.encoder(prompts).roll(1, dims=1)


def test_paths_are_two_settings_of_one_model(tool):
    model = build(COOP)
    params = [(n, p) for n, p in model.named_parameters()]
    paths = tool.Paths(model)
    fast = paths.use('mmprompt')
    assert fast is model
    assert type(model.head.text_encoder) is PrefixCachedTextEncoder
    assert model.head.cache_text_features is True
    slow = paths.use('straightforward')
    assert slow is model
    encoder = model.head.text_encoder
    assert type(encoder) is PlainTextEncoder
    assert encoder.clip is model.clip
    assert encoder.cut_after_eot is False
    assert encoder.text_chunk_size == len(CLASSES)
    assert model.head.cache_text_features is False
    # no parameter is added, copied or replaced by either setting
    assert [(n, p) for n, p in model.named_parameters()] == params
    paths.use('mmprompt')
    assert [(n, p) for n, p in model.named_parameters()] == params


def test_straightforward_path_encodes_every_position(tool):
    """The original's computation: all 77 positions, at most K prompts per
    text tower call; mmprompt's path encodes fewer."""
    model = build(COCOOP)
    paths = tool.Paths(model)
    clip = model.clip
    images = torch.randn(3, 3, 32, 32)
    with mock.patch.object(clip, 'encode_text', wraps=clip.encode_text) as spy:
        with torch.no_grad():
            paths.use('straightforward')(images)
        shapes = [c.args[0].shape for c in spy.call_args_list]
        assert all(c.kwargs['truncate'] is False for c in spy.call_args_list)
        assert all(s[1] == 77 and s[0] <= len(CLASSES) for s in shapes)
        assert sum(s[0] for s in shapes) == 3 * len(CLASSES)
        spy.reset_mock()
        with torch.no_grad():
            paths.use('mmprompt')(images)
        assert spy.call_count == 0  # the prefix-cached encoder's own passes


def test_coop_straightforward_recomputes_text_every_batch(tool):
    model = build(COOP)
    paths = tool.Paths(model)
    calls = {}
    for path in tool.PATHS:
        paths.use(path)
        encoder = model.head.text_encoder
        with mock.patch.object(
                encoder, 'forward', wraps=encoder.forward) as spy:
            with torch.no_grad():
                for _ in range(3):
                    model(torch.randn(2, 3, 32, 32))
        calls[path] = spy.call_count
    assert calls == dict(mmprompt=1, straightforward=3)


@pytest.mark.parametrize('head', sorted(HEADS))
def test_check_agreement(tool, head):
    paths = tool.Paths(build(HEADS[head]))
    found = tool.check_agreement(paths, setting(), ['train', 'test'])
    assert {
        'test logits', 'train loss', 'gradient of head.prompt_learner.ctx'
    } <= set(found)
    assert max(found.values()) <= tool.RTOL
    # the checked gradients are the learner's: the context (and Meta-Net)
    learner = paths.model.head.prompt_learner
    assert sum(k.startswith('gradient')
               for k in found) == len(list(learner.parameters()))


@pytest.mark.parametrize('broken', ['mmprompt', 'straightforward'])
@pytest.mark.parametrize('head', ['cocoop', 'coop'])
def test_check_agreement_catches_a_broken_path(tool, head, broken):
    paths = tool.Paths(build(HEADS[head]))
    encoders = paths.settings[broken]
    encoders['text_encoder'] = Rolled(encoders['text_encoder'])
    with pytest.raises(AssertionError, match='test logits .* differ'):
        tool.check_agreement(paths, setting(), ['test'])


def test_check_agreement_catches_broken_gradients(tool):
    """Equal logits are not enough: training checks the gradients."""
    paths = tool.Paths(build(COCOOP))
    encoder = paths.settings['straightforward']['text_encoder']

    class Detached(nn.Module):  # same values, no gradient to the context

        def forward(self, prompts):
            return encoder(prompts).detach() + 0 * prompts.context.sum()

    paths.settings['straightforward']['text_encoder'] = Detached()
    tool.check_agreement(paths, setting(), ['test'])
    with pytest.raises(AssertionError, match='gradient .* differ'):
        tool.check_agreement(paths, setting(), ['train'])


def test_paths_are_timed_interleaved(tool):
    """One step of each path per round, after each path's warm-up, so that
    a slow spell of a shared machine slows both paths."""
    paths = tool.Paths(build(COCOOP))
    used = []
    use = paths.use
    paths.use = lambda path: used.append(path) or use(path)
    timings = tool.measure_time(paths, setting(steps=3), tool.PATHS, 'train')
    assert used == list(tool.PATHS) + list(tool.PATHS) * 3
    for path in tool.PATHS:
        assert len(timings[path]['seconds']) == 3
        assert all(t > 0 for t in timings[path]['image_tower_seconds'])


@pytest.mark.parametrize('argv, message', [
    ([], 'either a config or --preset'),
    (['x.py', '--preset', 'all'], 'either a config or --preset'),
    (['x.py', '--classes', '0'], '--classes must be a positive int'),
    (['x.py', '--steps', '-1'], '--steps must be a positive int'),
    (['x.py', '--warmup', '-1'], '--warmup must be >= 0'),
    (['--preset', 'nope'], 'invalid choice'),
    (['--preset', 'kgcoop-train', '--baseline', 'x.py'
      ], 'a preset brings its own comparison'),
    (['x.py', '--paths', 'other'], 'invalid choice')
])
def test_parse_args_refuses(tool, capsys, argv, message):
    with pytest.raises(SystemExit):
        tool.parse_args(argv)
    assert message in capsys.readouterr().err


def test_presets(tool):
    settings = tool.settings_of(tool.parse_args(['--preset', 'all']))
    by_name = {s['name']: s for s in settings}
    assert set(by_name) >= {
        'cocoop-train-m4', 'cocoop-train-m16', 'cocoop-eval', 'coop-eval-1k',
        'kgcoop-train'
    }
    for s in settings:
        assert Path(s['config']).is_file()
        if s.get('baseline'):
            assert Path(s['baseline']['config']).is_file()
    m4 = by_name['cocoop-train-m4']
    assert (m4['classes'], m4['train_batch'], m4['mode'], m4['steps'],
            m4['speed_target']) == (50, 4, 'train', 5, 10)
    assert m4['memory_target'] == pytest.approx(1 / 3)
    m16 = by_name['cocoop-train-m16']
    assert m16['cfg_options'] == {
        'model.head.prompt_learner.n_ctx': 16,
        'model.head.prompt_learner.ctx_init': ''
    }
    assert m16['speed_target'] == 8
    ev = by_name['cocoop-eval']
    assert (ev['classes'], ev['images'], ev['test_batch'],
            ev['speed_target']) == (50, 20, 20, 5)
    coop = by_name['coop-eval-1k']
    assert (coop['classes'], coop['images'], coop['test_batch'],
            coop['speed_target']) == (1000, 200, 100, 4)
    assert coop['cfg_options'] == {'model.clip.arch': 'ViT-B-32'}
    # the command line still applies
    args = tool.parse_args(['--preset', 'cocoop-eval', '--steps', '3'])
    assert tool.settings_of(args)[0]['steps'] == 3


def _config(tmp_path: Path, head: dict) -> str:
    path = tmp_path / f"{head['type']}.py"
    path.write_text(CONFIG.format(head=head))
    return str(path)


def test_build_model_needs_a_prompt_head(tool, tmp_path):
    args = tool.parse_args(
        [_config(tmp_path, dict(type='ZeroShotHead')), '--classes', '3'])
    with pytest.raises(ValueError, match='CoOpHead or CoCoOpHead'):
        tool.build_model(tool.settings_of(args)[0])


def _check_output(out: dict, table: str, modes) -> None:
    (record, ) = out['records']
    assert record['modes'] == list(modes)
    assert max(record['agreement'].values()) <= 1e-4
    assert [row['mode'] for row in record['rows']] == list(modes)
    for row in record['rows']:
        for path in ('mmprompt', 'straightforward'):
            assert row[path]['images_per_s'] > 0
            assert row[path]['peak_mib'] >= 0
            assert len(row[path]['seconds']) == 1
        assert row['round_speedups'] == [row['speedup']]
        assert 'memory_ratio' in row
    blocks = [block.splitlines() for block in table.split('\n\n')]
    assert blocks[0][0].startswith('Measured ')
    comparison, steps = blocks[1:]
    assert len(comparison) == 2 + len(modes)
    assert 'speed-up' in comparison[0] and 'per round' in comparison[0]
    for line, mode in zip(comparison[2:], modes):
        assert f'| {mode} |' in line and '×' in line
    assert len(steps) == 2 + 2 * len(modes)


def test_end_to_end_in_process(tool, tmp_path, capsys):
    out = tmp_path / 'results.json'
    config = _config(tmp_path, COCOOP)
    tool.main([config, '--classes', '3', '--batch', '2', '--images', '4'] +
              ['--steps', '1', '--warmup', '0', '--no-isolate', '--markdown'] +
              ['--out', str(out)])
    table = capsys.readouterr().out
    results = json.loads(out.read_text())
    _check_output(results, table, ('train', 'test'))
    record = results['records'][0]
    assert record['method'] == 'CoCoOpHead'
    assert record['text_encoder'] == 'PrefixCachedTextEncoder'
    assert record['test_batch'] == 2
    assert record['pretrained'] is False  # the config's file is not read
    assert set(results['machine']) >= {'date', 'cpu', 'nproc', 'torch'}


def test_cli_measures_memory_in_subprocesses(tmp_path):
    """The command line, each path's peak memory in a fresh process."""
    out = tmp_path / 'results.json'
    argv = [_config(tmp_path, COOP), '--classes', '3', '--images', '5']
    argv += ['--mode', 'test', '--steps', '1', '--threads', '1']
    argv += ['--markdown', '--out', str(out)]
    proc = subprocess.run(
        [sys.executable, str(TOOL)] + argv,
        capture_output=True,
        text=True,
        cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    _check_output(results, proc.stdout.strip(), ('test', ))
    record = results['records'][0]
    assert record['test_batch'] == 3  # the config's
    assert record['threads'] == 1
    for path in ('mmprompt', 'straightforward'):
        method = record['rows'][0][path]['memory_method']
        assert method.startswith(('VmHWM', 'ru_maxrss'))


# ---------------------------------------------------------------------------
# A comparison of two models (KgCoOp's training step against CoOp's)
# ---------------------------------------------------------------------------
KGCOOP = dict(
    type='KgCoOpHead',
    prompt_learner=dict(type='CoOpPromptLearner', ctx_init='a photo of a'),
    templates='EuroSAT')
COOP_M4 = dict(
    type='CoOpHead',
    prompt_learner=dict(type='CoOpPromptLearner', ctx_init='a photo of a'))


def test_kgcoop_preset(tool):
    args = tool.parse_args(['--preset', 'kgcoop-train'])
    (kg, ) = tool.settings_of(args)
    assert kg['config'].endswith('configs/_base_/models/kgcoop.py')
    assert (kg['classes'], kg['train_batch'], kg['mode'],
            kg['max_ratio']) == (50, 4, 'train', 1.15)
    baseline = kg['baseline']
    assert baseline['config'].endswith('configs/_base_/models/coop.py')
    # CoOp with KgCoOp's prompt: only the KgCoOp term differs
    assert baseline['cfg_options'] == {
        'model.head.prompt_learner.n_ctx': 4,
        'model.head.prompt_learner.ctx_init': 'a photo of a'
    }
    model, _ = tool.build_model(
        dict(kg, cfg_options={'model.clip.arch': 'mmprompt-tiny-vit'}))
    assert type(model.head).__name__ == 'KgCoOpHead'
    coop, _ = tool.build_model(
        tool.pair_setting(
            dict(kg, cfg_options={'model.clip.arch': 'mmprompt-tiny-vit'}),
            'baseline'))
    assert type(coop.head).__name__ == 'CoOpHead'
    assert 'model.clip.arch' not in baseline['cfg_options']


def pair(model_head=KGCOOP, baseline_head=COOP_M4):
    return tool_module().ModelPair(
        dict(model=build(model_head), baseline=build(baseline_head)))


def tool_module():
    return sys.modules['tools_analysis_tools_benchmark']


def test_check_pair(tool):
    models = pair()
    found = tool.check_pair(models, setting(), ['train', 'test'])
    assert set(found) == {'test logits', 'train loss (cross-entropy)'}
    assert max(found.values()) <= tool.RTOL
    # the baseline now holds the model's learned state
    torch.testing.assert_close(
        models.use('baseline').head.prompt_learner.ctx,
        models.use('model').head.prompt_learner.ctx)
    broken = pair()
    head = broken.use('baseline').head
    head.text_encoder = Rolled(head.text_encoder)
    with pytest.raises(
            AssertionError,
            match='test logits of the model and '
            'baseline paths differ'):
        tool.check_pair(broken, setting(), ['test'])
    other = pair(
        baseline_head=dict(
            type='CoOpHead',
            prompt_learner=dict(type='CoOpPromptLearner', n_ctx=8)))
    with pytest.raises(ValueError, match='--skip-check'):
        tool.check_pair(other, setting(), ['test'])


def test_pair_is_timed_interleaved_each_model_with_its_own_step(tool):
    models = pair()
    used = []
    use = models.use
    models.use = lambda path: used.append(path) or use(path)
    stepped = []
    for path in tool.PAIR_PATHS:
        net = use(path)
        net.head.prompt_learner.register_forward_hook(
            lambda *_, path=path: stepped.append(path))
    timings = tool.measure_time(models, setting(steps=3), tool.PAIR_PATHS,
                                'train')
    assert used == list(tool.PAIR_PATHS) * 4
    assert stepped == list(tool.PAIR_PATHS) * 4
    for path in tool.PAIR_PATHS:
        assert len(timings[path]['seconds']) == 3


def test_pair_end_to_end(tool, tmp_path, capsys):
    out = tmp_path / 'results.json'
    model = _config(tmp_path, KGCOOP)
    baseline = _config(tmp_path, COOP_M4)
    tool.main([model, '--baseline', baseline, '--classes', '3'] +
              ['--batch', '2', '--mode', 'train', '--steps', '2'] +
              ['--warmup', '1', '--no-isolate', '--markdown'] +
              ['--out', str(out)])
    table = capsys.readouterr().out
    (record, ) = json.loads(out.read_text())['records']
    assert (record['method'], record['baseline_method']) == ('KgCoOpHead',
                                                             'CoOpHead')
    assert max(record['agreement'].values()) <= 1e-4
    (row, ) = record['rows']
    assert len(row['round_ratios']) == 2
    assert row['ratio'] == pytest.approx(
        sorted(row['round_ratios'])[0] / 2 +
        sorted(row['round_ratios'])[1] / 2)
    for path in tool.PAIR_PATHS:
        assert row[path]['images_per_s'] > 0 and row[path]['peak_mib'] >= 0
    blocks = [block.splitlines() for block in table.split('\n\n')]
    assert blocks[0][0].startswith('Measured ')
    assert 'Time ratio (two models)' in blocks[0][0]
    comparison, steps = blocks[1:]
    assert 'time ratio' in comparison[0] and len(comparison) == 3
    assert '| train | 3 | 2 | KgCoOpHead | CoOpHead |' in comparison[2]
    assert len(steps) == 4
    assert '| model (KgCoOpHead) |' in steps[2]
    assert '| baseline (CoOpHead) |' in steps[3]


def test_pair_memory_in_subprocesses(tmp_path):
    out = tmp_path / 'results.json'
    argv = [_config(tmp_path, KGCOOP), '--baseline', _config(tmp_path, COOP)]
    argv += ['--classes', '3', '--batch', '2', '--mode', 'train']
    argv += [
        '--steps', '1', '--threads', '1', '--skip-check', '--out',
        str(out)
    ]
    proc = subprocess.run(
        [sys.executable, str(TOOL)] + argv,
        capture_output=True,
        text=True,
        cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record, ) = json.loads(out.read_text())['records']
    assert 'agreement' not in record
    for path in ('model', 'baseline'):
        method = record['rows'][0][path]['memory_method']
        assert method.startswith(('VmHWM', 'ru_maxrss'))


# ---------------------------------------------------------------------------
# ProGrad: mmprompt's path against the original's teacher and update
# ---------------------------------------------------------------------------
PROGRAD = dict(type='ProGradHead', templates='OxfordPets')


def test_prograd_preset(tool):
    (pg, ) = tool.settings_of(tool.parse_args(['--preset', 'prograd-train']))
    assert pg['config'].endswith('configs/_base_/models/prograd.py')
    assert (pg['classes'], pg['train_batch'], pg['mode'],
            pg['speed_target']) == (50, 4, 'train', 3)
    assert not pg.get('baseline')  # two paths of one model
    model, _ = tool.build_model(
        dict(pg, cfg_options={'model.clip.arch': 'mmprompt-tiny-vit'}))
    assert type(model.head).__name__ == 'ProGradHead'
    assert model.head.prompt_learner.n_ctx == 16


def test_prograd_straightforward_is_the_originals(tool):
    """A second fp32 CLIP as teacher (its image tower every step, its text
    features once), 77-token prompts and two backward passes; mmprompt's
    path: the same CLIP, the prefix-cached encoder, ProGradOptimWrapper's
    two autograd.grad passes."""
    model = build(PROGRAD)
    paths = tool.Paths(model)
    teacher = paths.settings['straightforward']['teacher']
    assert teacher.clip is not model.clip
    for a, b in zip(teacher.clip.model.parameters(),
                    model.clip.model.parameters()):
        assert a is not b and torch.equal(a, b)
    assert paths.settings['mmprompt']['teacher'] is None
    params = [p for p in model.parameters() if p.requires_grad]
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
    optimizer = torch.optim.SGD(params, lr=0.002)
    counts = {}
    for path in tool.PATHS:
        paths.use(path)
        with mock.patch.object(
                teacher.clip, 'encode_image',
                wraps=teacher.clip.encode_image) as image, mock.patch(
                    'torch.autograd.backward',
                    wraps=torch.autograd.backward) as backward, mock.patch(
                        'torch.autograd.grad',
                        wraps=torch.autograd.grad) as grad:
            for _ in range(2):
                paths.train_step(images, labels, optimizer, nullcontext)
        counts[path] = (image.call_count, backward.call_count, grad.call_count)
    assert counts == dict(mmprompt=(0, 0, 4), straightforward=(2, 4, 0))
    assert type(model.head.text_encoder) is PlainTextEncoder
    assert 'teacher_logits' in model.head.__dict__
    paths.use('mmprompt')
    assert 'teacher_logits' not in model.head.__dict__
    assert type(model.head.text_encoder) is PrefixCachedTextEncoder


def test_prograd_check_agreement(tool):
    paths = tool.Paths(build(PROGRAD))
    found = tool.check_agreement(paths, setting(), ['train', 'test'])
    assert set(found) == {
        'test logits', 'train loss_ce', 'train loss_kl',
        'gradient of head.prompt_learner.ctx'
    }
    assert max(found.values()) <= tool.RTOL
    # A wrong update on the straightforward path is caught.
    project = tool.prograd_project

    def wrong(g_ce, g_kl, lambda_=1.0):
        g, cos, projected = project(g_ce, g_kl, lambda_)
        return g - g_kl, cos, projected

    with mock.patch.object(tool, 'prograd_project', wrong):
        with pytest.raises(AssertionError, match='gradient .* differ'):
            tool.check_agreement(paths, setting(), ['train'])


def test_prograd_end_to_end(tool, tmp_path, capsys):
    out = tmp_path / 'results.json'
    tool.main([_config(tmp_path, PROGRAD), '--classes', '3'] +
              ['--batch', '2', '--mode', 'train', '--steps', '1'] +
              ['--warmup', '0', '--no-isolate', '--out',
               str(out)])
    (record, ) = json.loads(out.read_text())['records']
    assert record['method'] == 'ProGradHead'
    assert record['teacher_copy_mib'] > 0
    assert max(record['agreement'].values()) <= 1e-4
    (row, ) = record['rows']
    assert row['speedup'] > 0


def test_linear_probe_fit_preset(tool):
    """Issue 15: the CoOp paper's linear probe on cached features against
    one CoOp epoch on the same 16-shot split, ViT-B/16."""
    (s, ) = tool.settings_of(tool.parse_args(['--preset', 'linear-probe-fit']))
    assert s['kind'] == 'features'
    assert (s['classes'], s['shots'], s['train_batch']) == (10, 16, 32)
    assert Path(s['config']).name == 'lpclip.py'
    assert Path(s['baseline']['config']).name == 'coop.py'


def test_features_end_to_end(tool, tmp_path, capsys):
    """The features path: the split's features extracted once, then each
    round a real CoOp epoch (its context moves) and the probe's fit on the
    cached features (C chosen on val), timed; the markdown table."""
    pytest.importorskip('sklearn')  # the probe's optional dependency
    out = tmp_path / 'results.json'
    moved = []
    epoch = tool.coop_epoch

    def spy(model, optimizer, images, labels, batch):
        before = model.head.prompt_learner.ctx.detach().clone()
        loss = epoch(model, optimizer, images, labels, batch)
        moved.append(
            not torch.equal(before, model.head.prompt_learner.ctx.detach()))
        # the warm-up step, then the split (classes x shots)
        assert len(images) in (3 * 16, 32)
        return loss

    with mock.patch.object(tool, 'coop_epoch', spy):
        tool.main([
            '--preset', 'linear-probe-fit', '--classes', '3', '--steps', '2',
            '--cfg-options', 'model.clip.arch=mmprompt-tiny-vit', '--out',
            str(out)
        ] + ['--threads', '1'])
    assert moved == [True, True, True]
    (record, ) = json.loads(out.read_text())['records']
    assert record['method'] == 'LogisticRegressionProbe'
    assert record['baseline_method'] == 'CoOpHead'
    assert record['images'] == 3 * 16 and record['val_images'] == 3 * 4
    assert len(record['round_speedups']) == 2
    assert record['speedup'] > 0 and record['extraction_s'] > 0
    assert record['chosen']['C']['split'] == 'val'
    text = capsys.readouterr().out
    assert '| `linear-probe-fit`' in text and 'speed-up' in text


def test_tip_adapter_f_train_preset(tool, tmp_path, capsys):
    """Issue 15: Tip-Adapter-F on cached features (10 views, 20 epochs of
    the original's AdamW at batch 256, the alpha/beta search on val)
    against one CoOp epoch on the same 16-shot split, ViT-B/16; run on the
    tiny CLIP: the keys are trained and alpha, beta chosen on val."""
    (s, ) = tool.settings_of(
        tool.parse_args(['--preset', 'tip-adapter-f-train']))
    assert s['kind'] == 'features'
    assert (s['classes'], s['shots'], s['train_batch']) == (10, 16, 32)
    assert (s['views'], s['adapter_epochs'], s['adapter_batch']) == (10, 20,
                                                                     256)
    assert s['adapter_optimizer'] == dict(
        type='AdamW', lr=0.001, eps=1e-4, weight_decay=0.01)
    assert Path(s['config']).name == 'tip_adapter_f.py'
    assert Path(s['baseline']['config']).name == 'coop.py'
    out = tmp_path / 'results.json'
    fit = tool.fit_on_features
    keys = []

    def spy(model, setting, train, val):
        chosen = fit(model, setting, train, val)
        keys.append(model.adapter.cache_keys.detach().clone())
        assert train.features.shape[0] == 10  # views
        return chosen

    with mock.patch.object(tool, 'fit_on_features', spy):
        tool.main([
            '--preset', 'tip-adapter-f-train', '--classes', '2', '--steps',
            '1', '--cfg-options', 'model.clip.arch=mmprompt-tiny-vit', '--out',
            str(out), '--threads', '1'
        ])
    (record, ) = json.loads(out.read_text())['records']
    assert record['method'] == 'TipAdapter'
    assert record['chosen']['alpha']['split'] == 'val'
    assert record['chosen']['beta']['split'] == 'val'
    # Trained: the keys moved from the normalised mean of the views.
    (model_keys, *_) = keys
    assert model_keys.shape[0] == 2 * 16
    assert not torch.allclose(
        model_keys.norm(dim=-1), torch.ones(32), atol=1e-4)
    assert '| `tip-adapter-f-train`' in capsys.readouterr().out
