# Copyright (c) mmprompt contributors. All rights reserved.
"""CheckpointFitHook: original checkpoints converted in memory, unfitting
ones refused before mmengine loads them with ``strict=False``."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from mmprompt.engine import CheckpointFitHook
from mmprompt.registry import HOOKS, MODELS
from mmprompt.utils import CheckpointMismatchError


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
            head=dict(
                type='CoOpHead',
                prompt_learner=dict(type='CoOpPromptLearner', n_ctx=4))))
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
