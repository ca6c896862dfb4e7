# Copyright (c) mmprompt contributors. All rights reserved.
"""GaussianPromptAggregationHook: the original's epoch weights and its
aggregate, bit for bit (golden/promptsrc), on a fake runner and a tiny real
Runner (resume, load_from, errors).

The SIGKILL-and-resume run of ``tools/train.py`` is in
``tests/test_reliability/test_prompt_aggregation_resume.py``.
"""
import itertools
import json

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import EpochBasedTrainLoop, Runner
from torch.utils.data import Dataset

from mmprompt.engine import (GaussianPromptAggregationHook,
                             gaussian_epoch_weights)
from mmprompt.utils import load_checkpoint_file

VARIANTS = ('default', 'text2-partial-init_vision3-depth1',
            'text6-random_text-depth1')


def test_epoch_weights_are_the_originals(golden_dir):
    table = json.loads(
        (golden_dir / 'promptsrc' / 'gpa_weights.json').read_text())
    settings = list(table['shipped_configs'].values())
    settings += list(table['variants'].values())
    assert len(settings) >= 7
    for setting in settings:
        ours = gaussian_epoch_weights(setting['GPA_MEAN'], setting['GPA_STD'],
                                      setting['MAX_EPOCH'])
        theirs = setting['weights']
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert abs(a - b) <= 1e-15 * b, (setting, a, b)
    weights = gaussian_epoch_weights(15, 1, 20)
    assert [round(w, 3)
            for w in weights[12:17]] == [0.054, 0.242, 0.399, 0.242, 0.054]
    assert weights[0] < 2e-43 and weights[0] > 0


@pytest.mark.parametrize('kwargs, match', [
    (dict(mean=15, std=0), 'std must be a positive number'),
    (dict(mean=15, std=-1), 'std must be a positive number'),
    (dict(mean=float('nan'), std=1), 'mean must be a finite'),
    (dict(mean=15, std=1, max_epochs=0), 'max_epochs must be a positive'),
    (dict(mean=1e6, std=1, max_epochs=20), 'weight of 0'),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gaussian_epoch_weights(kwargs['mean'], kwargs['std'],
                               kwargs.get('max_epochs', 20))
    if 'max_epochs' not in kwargs:
        with pytest.raises(ValueError, match=match):
            GaussianPromptAggregationHook(kwargs['mean'], kwargs['std'])


# ---------------------------------------------------------------------------
# The original's worked example, on a model holding its tensors
# ---------------------------------------------------------------------------
def _key(name: str) -> str:
    return name.replace('.', '__')


class _Frozen(nn.Module):
    """Stands in for the open_clip model OpenCLIP keeps unregistered."""

    def __init__(self, tensors):
        super().__init__()
        for name, t in tensors.items():
            self.register_parameter(
                _key(name), nn.Parameter(t.clone(), requires_grad=False))


class _Clip(nn.Module):

    def __init__(self, tensors):
        super().__init__()
        object.__setattr__(self, 'model', _Frozen(tensors))


class _Model(nn.Module):
    """The original's learnable tensors as parameters; its frozen tensors
    in ``clip.model`` (not registered, as OpenCLIP keeps them)."""

    def __init__(self, learnable, frozen):
        super().__init__()
        for name, t in learnable.items():
            self.register_parameter(_key(name), nn.Parameter(t.clone()))
        self.clip = _Clip(frozen)
        self.class_names = ['a', 'b']
        self.names_set = 0

    def set_class_names(self, names):
        self.names_set += 1


class _Loop(EpochBasedTrainLoop):

    def __init__(self, max_epochs):
        self._max_epochs = max_epochs


class _Runner:

    def __init__(self, model, max_epochs, epoch=0):
        self.model = model
        self.train_loop = _Loop(max_epochs)
        self.epoch = epoch


def _aggregate(golden_dir, variant, average_frozen):
    folder = golden_dir / 'promptsrc' / variant
    options = json.loads((folder / 'options.json').read_text())
    states = torch.load(folder / 'gpa_epoch_states.pt')
    saved = load_checkpoint_file(str(folder / options['checkpoint']))
    learnable = set(options['learnable'])
    frozen = {
        k: v
        for k, v in saved['state_dict'].items() if k not in learnable
    }
    model = _Model(states['epoch_states'][0], frozen)
    max_epochs = options['options']['MAX_EPOCH']
    assert len(states['epoch_states']) == max_epochs
    hook = GaussianPromptAggregationHook(
        options['options']['GPA_MEAN'],
        options['options']['GPA_STD'],
        average_frozen=average_frozen)
    runner = _Runner(model, max_epochs)
    hook.before_train(runner)
    for epoch, state in enumerate(states['epoch_states']):
        with torch.no_grad():
            for name, t in state.items():
                getattr(model, _key(name)).copy_(t)
        runner.epoch = epoch
        hook.after_train_epoch(runner)
    result = {name: getattr(model, _key(name)).detach() for name in learnable}
    result.update({
        name: getattr(model.clip.model, _key(name)).detach()
        for name in frozen
    })
    expected = torch.load(folder / 'gpa_result.pt')
    return model, frozen, result, expected


@pytest.mark.parametrize('variant', VARIANTS)
def test_original_averaging_is_bit_identical(golden_dir, variant):
    """``average_frozen=True`` gives the whole state dict of the original's
    GPA (learnable and frozen tensors), bit for bit; the class tokens are
    gathered again from the averaged embedding."""
    model, frozen, result, expected = _aggregate(golden_dir, variant, True)
    assert sorted(result) == sorted(expected)
    for name, t in expected.items():
        assert torch.equal(result[name], t), name
    # The frozen weights moved, as in the original (fl32(g_e) sum != 1).
    moved = [n for n in frozen if not torch.equal(frozen[n], result[n])]
    assert len(moved) > len(frozen) // 3, moved
    assert model.names_set == 1


@pytest.mark.parametrize('variant', VARIANTS)
def test_default_averages_the_learnable_tensors_only(golden_dir, variant):
    model, frozen, result, expected = _aggregate(golden_dir, variant, False)
    for name, t in frozen.items():
        assert torch.equal(result[name], t), name
    learnable = [n for n in result if n not in frozen]
    for name in learnable:
        assert torch.equal(result[name], expected[name]), name
    # Aggregation changed them: the last epoch's values are not the mean.
    last = torch.load(golden_dir / 'promptsrc' / variant /
                      'gpa_epoch_states.pt')['epoch_states'][-1]
    assert not any(torch.equal(result[n], last[n]) for n in learnable)
    assert model.names_set == 0


def test_weights_matter(golden_dir):
    """Uniform weights (the Gaussian dropped) do not give the original's
    aggregate."""
    folder = golden_dir / 'promptsrc' / 'default'
    states = torch.load(folder / 'gpa_epoch_states.pt')['epoch_states']
    expected = torch.load(folder / 'gpa_result.pt')
    uniform = sum(s['prompt_learner.ctx'] for s in states) / len(states)
    assert not torch.allclose(uniform, expected['prompt_learner.ctx'])


# ---------------------------------------------------------------------------
# A tiny real Runner: checkpoints, resume, load_from
# ---------------------------------------------------------------------------
class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.frozen(self.linear(torch.stack(inputs)))
        return {'loss': out.square().mean()} if mode == 'loss' else out


class _Data(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index + 1)))


_RUNS = itertools.count()


def _runner(work_dir, epochs=4, resume=False, load_from=None, **hook):
    hook = dict(
        dict(type='GaussianPromptAggregationHook', mean=3, std=1), **hook)
    return Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(type='SafeCheckpointHook', interval=1)),
        custom_hooks=[hook],
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
        experiment_name=f'gpa-{next(_RUNS)}',
        default_scope='mmprompt')


def _state(path):
    return load_checkpoint_file(str(path))


def test_runner_aggregates_and_saves_the_running_sum(tmp_path):
    runner = _runner(tmp_path / 'run')
    initial_frozen = runner.model.frozen.weight.detach().clone()
    runner.train()
    weights = gaussian_epoch_weights(3, 1, 4)
    ckpts = [_state(tmp_path / 'run' / f'epoch_{e}.pth') for e in (1, 2, 3)]
    # Each checkpoint holds the sum of the epochs up to it.
    running = None
    for epoch, ckpt in enumerate(ckpts, 1):
        w = ckpt['state_dict']['linear.weight'] * weights[epoch - 1]
        running = w if running is None else w + running
        state = ckpt['gaussian_prompt_aggregation']
        assert state['epochs'] == list(range(1, epoch + 1))
        assert torch.equal(state['sum']['linear.weight'], running)
        assert sorted(state['sum']) == ['linear.bias', 'linear.weight']
    # The last checkpoint and the model hold the aggregate.
    final = _state(tmp_path / 'run' / 'epoch_4.pth')
    agg = final['gaussian_prompt_aggregation']['sum']['linear.weight']
    assert torch.equal(final['state_dict']['linear.weight'], agg)
    assert torch.equal(runner.model.linear.weight.detach(), agg)
    assert not torch.equal(agg, ckpts[-1]['state_dict']['linear.weight'])
    # Frozen weights untouched by default.
    assert torch.equal(runner.model.frozen.weight, initial_frozen)


def test_resume_gives_the_aggregate_of_an_uninterrupted_run(tmp_path):
    _runner(tmp_path / 'ref').train()
    _runner(tmp_path / 'cut', epochs=4).train()
    # Resume the second run from epoch 2 as after a kill during epoch 3.
    for name in ('epoch_3.pth', 'epoch_4.pth'):
        (tmp_path / 'cut' / name).unlink()
    (tmp_path / 'cut' /
     'last_checkpoint').write_text(str(tmp_path / 'cut' / 'epoch_2.pth'))
    _runner(tmp_path / 'cut', resume=True).train()
    a = _state(tmp_path / 'ref' / 'epoch_4.pth')['state_dict']
    b = _state(tmp_path / 'cut' / 'epoch_4.pth')['state_dict']
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_without_or_with_other_state_is_refused(tmp_path):
    _runner(tmp_path / 'run', epochs=2).train()
    ckpt = str(tmp_path / 'run' / 'epoch_1.pth')
    with pytest.raises(ValueError, match="'mean': 3, 'std': 1.*'mean': 5"):
        runner = _runner(tmp_path / 'other', epochs=2, mean=5)
        runner._resume, runner._load_from = True, ckpt
        runner.train()
    data = torch.load(ckpt, weights_only=False)
    del data['gaussian_prompt_aggregation']
    torch.save(data, tmp_path / 'bare.pth')
    runner = _runner(tmp_path / 'bare', epochs=2)
    runner._resume, runner._load_from = True, str(tmp_path / 'bare.pth')
    with pytest.raises(
            RuntimeError,
            match='resumed at epoch 1 from a '
            'checkpoint without the state'):
        runner.train()
    # load_from without resume starts a new aggregation.
    runner = _runner(tmp_path / 'fresh', epochs=2, load_from=ckpt)
    runner.train()
    state = _state(tmp_path / 'fresh' / 'epoch_2.pth')
    assert state['gaussian_prompt_aggregation']['epochs'] == [1, 2]


def test_iteration_based_training_is_refused(tmp_path):
    runner = _runner(tmp_path / 'iters')
    runner._train_loop = dict(type='IterBasedTrainLoop', max_iters=2)
    with pytest.raises(TypeError, match='epoch-based training loop'):
        runner.train()


def test_average_frozen_on_a_runner(tmp_path):
    runner = _runner(tmp_path / 'all', average_frozen=True)
    initial = runner.model.frozen.weight.detach().clone()
    runner.train()
    state = _state(tmp_path / 'all' / 'epoch_4.pth')
    assert 'frozen.weight' in state['gaussian_prompt_aggregation']['sum']
    moved = runner.model.frozen.weight.detach()
    torch.testing.assert_close(moved, initial, rtol=1e-6, atol=0)
