# Copyright (c) mmprompt contributors. All rights reserved.
"""CheckpointFitHook: original checkpoints converted in memory, unfitting
ones refused before mmengine loads them with ``strict=False``."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from mmprompt.engine import CheckpointFitHook
from mmprompt.registry import HOOKS
from mmprompt.testing import tiny_prompt_classifier
from mmprompt.utils import TRAINED_ON, CheckpointMismatchError


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    model = tiny_prompt_classifier(n_ctx=4)
    return SimpleNamespace(
        model=model,
        cfg=Config(dict()),
        work_dir=str(tmp_path_factory.mktemp('work')))


def test_an_mmprompt_checkpoint_is_checked_and_left_as_it_is(runner):
    hook = HOOKS.build(dict(type='CheckpointFitHook', checkpoint='ckpt.pth'))
    ctx = torch.zeros(4, 64)
    good = {'state_dict': {'module.head.prompt_learner.ctx': ctx}}
    hook.after_load_checkpoint(runner, good)
    assert list(good['state_dict']) == ['module.head.prompt_learner.ctx']


def test_an_original_checkpoint_is_converted_in_place(runner):
    ctx = torch.zeros(4, 64)
    original = {
        'state_dict': {
            'ctx': ctx,
            'token_prefix': torch.zeros(3, 1, 64),
            'token_suffix': torch.zeros(3, 72, 64)
        },
        'epoch': 10
    }
    CheckpointFitHook('model.pth.tar-10').after_load_checkpoint(
        runner, original)
    assert list(original['state_dict']) == ['head.prompt_learner.ctx']
    assert original['state_dict']['head.prompt_learner.ctx'] is ctx
    assert original['meta'] == dict(
        epoch=10, converted_from='model.pth.tar-10')


def test_unfitting_checkpoints_are_refused(runner):
    hook = CheckpointFitHook('ckpt.pth')
    with pytest.raises(
            CheckpointMismatchError,
            match=r"'ckpt.pth' does not hold \['head.prompt_learner.ctx'\]"):
        hook.after_load_checkpoint(
            runner, {'state_dict': {
                'backbone.weight': torch.zeros(1)
            }})
    with pytest.raises(
            CheckpointMismatchError,
            match=r'\(16, 64\) in the checkpoint, \(4, 64\)'):
        hook.after_load_checkpoint(
            runner,
            {'state_dict': {
                'head.prompt_learner.ctx': torch.zeros(16, 64)
            }})


def test_the_message_names_the_checkpoint_being_loaded(runner):
    bad = {'state_dict': {'head.prompt_learner.ctx': torch.zeros(16, 64)}}
    runner.cfg.load_from = 'work_dirs/a/epoch_3.pth'
    with pytest.raises(CheckpointMismatchError, match='a/epoch_3.pth'):
        CheckpointFitHook().after_load_checkpoint(runner, dict(bad))
    runner.cfg.load_from = None
    with pytest.raises(CheckpointMismatchError, match='last_checkpoint'):
        CheckpointFitHook().after_load_checkpoint(runner, dict(bad))


# ---------------------------------------------------------------------------
# What a checkpoint was trained with
# ---------------------------------------------------------------------------
def _coop(**learner):
    return tiny_prompt_classifier(n_ctx=4, **learner)


def _runner_of(model, classes=('cat', 'dog')):
    dataset = SimpleNamespace(metainfo=dict(classes=classes))
    return SimpleNamespace(
        model=model,
        cfg=Config(dict()),
        work_dir='.',
        train_dataloader=SimpleNamespace(dataset=dataset))


def _saved_by(runner):
    checkpoint = dict(
        meta=dict(epoch=1), state_dict=dict(runner.model.state_dict()))
    CheckpointFitHook().before_save_checkpoint(runner, checkpoint)
    return checkpoint


def test_a_saved_checkpoint_records_what_it_was_trained_with(runner):
    trained = _runner_of(runner.model, classes=('cat', 'dog', 'sea_lion'))
    saved = _saved_by(trained)['meta'][TRAINED_ON]
    assert saved == dict(
        runner.model.checkpoint_meta(), class_names=['cat', 'dog', 'sea_lion'])
    assert saved['prompt_learner']['class_token_position'] == 'end'


def test_a_checkpoint_of_another_learner_or_clip_is_refused(runner):
    """Same shapes: mmengine would load it and test a wrong model."""
    torch.manual_seed(0)
    trained = _coop(class_token_position='middle')
    checkpoint = _saved_by(_runner_of(trained))
    with pytest.raises(
            CheckpointMismatchError,
            match=r"'epoch_1.pth' was trained with another model than the "
            r"config builds: prompt_learner.class_token_position: 'middle' "
            r"in the checkpoint, 'end' in the config; clip weights: .*"
            r'--ignore-checkpoint-meta'):
        CheckpointFitHook('epoch_1.pth').after_load_checkpoint(
            runner, dict(checkpoint))
    # Asked for explicitly: loaded.
    hook = HOOKS.build(
        dict(
            type='CheckpointFitHook',
            checkpoint='epoch_1.pth',
            ignore_meta=True))
    hook.after_load_checkpoint(runner, dict(checkpoint))


def test_checkpoints_that_record_nothing_still_load(runner):
    """Written before the record (tests/data/legacy_checkpoints) or by the
    original code (converted in memory): loaded, with a warning."""
    from pathlib import Path

    from mmprompt.utils import load_checkpoint_file
    legacy = Path(__file__).resolve().parents[2] / 'data' / \
        'legacy_checkpoints' / 'cocoop_epoch_1.pth'
    checkpoint = load_checkpoint_file(str(legacy))
    assert TRAINED_ON not in checkpoint['meta']
    model = tiny_prompt_classifier('CoCoOpHead', ctx_init='a photo of a')
    CheckpointFitHook(str(legacy)).after_load_checkpoint(
        SimpleNamespace(model=model, cfg=Config(dict()), work_dir='.'),
        checkpoint)
    original = {
        'state_dict': {
            'ctx': torch.zeros(4, 64),
            'token_prefix': torch.zeros(3, 1, 64),
            'token_suffix': torch.zeros(3, 72, 64)
        },
        'epoch': 10
    }
    CheckpointFitHook('model.pth.tar-10').after_load_checkpoint(
        runner, original)
