# Copyright (c) mmprompt contributors. All rights reserved.
"""Checkpoints written by mmprompt's main before the core redesign
(``tests/data/legacy_checkpoints``, see its ``make_fixture.py``) still load
through the checkpoint module and give the same logits."""
from pathlib import Path

import pytest
import torch

from mmprompt.registry import MODELS
from mmprompt.testing import random_tiny_clip, save_open_clip_weights
from mmprompt.utils import (check_checkpoint_fits, checkpoint_filter_fn,
                            is_valid_checkpoint, load_checkpoint_file)

FIXTURE = Path(__file__).resolve().parents[1] / 'data' / 'legacy_checkpoints'
HEADS = {
    'cocoop':
    dict(
        type='CoCoOpHead',
        prompt_learner=dict(
            type='CoCoOpPromptLearner', ctx_init='a photo of a')),
    'coop_csc_middle':
    dict(
        type='CoOpHead',
        prompt_learner=dict(
            type='CoOpPromptLearner',
            n_ctx=4,
            csc=True,
            num_classes=3,
            class_token_position='middle')),
}


@pytest.fixture(scope='module')
def expected():
    return torch.load(FIXTURE / 'expected.pt', weights_only=True)


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory, expected):
    clip = random_tiny_clip('mmprompt-tiny-vit', 0)
    # The same random CLIP as when the fixture was written.
    assert float(clip.token_embedding.weight.detach().sum()) == pytest.approx(
        expected['clip_checksum'], rel=1e-6)
    path = tmp_path_factory.mktemp('clip') / 'tiny_clip.pt'
    save_open_clip_weights(clip, str(path))
    return str(path)


@pytest.mark.parametrize('name', sorted(HEADS))
def test_legacy_checkpoint_gives_the_same_logits(name, clip_file, expected):
    path = str(FIXTURE / f'{name}_epoch_1.pth')
    assert is_valid_checkpoint(path)  # --resume would take it
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP',
                arch='mmprompt-tiny-vit',
                pretrained=clip_file),
            head=HEADS[name]))
    state_dict = checkpoint_filter_fn(load_checkpoint_file(path), model)
    assert all(k.startswith('head.prompt_learner.') for k in state_dict)
    check_checkpoint_fits(model, state_dict, path)
    result = model.load_state_dict(state_dict, strict=False)
    assert not result.unexpected_keys
    model.set_class_names(expected['classes'])
    model.eval()
    images = torch.rand(
        4, 3, 32, 32, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        logits = model(images)
    torch.testing.assert_close(
        logits, expected['logits'][name], rtol=1e-5, atol=1e-5)
