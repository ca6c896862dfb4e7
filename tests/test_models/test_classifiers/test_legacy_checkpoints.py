# Copyright (c) mmprompt contributors. All rights reserved.
"""Checkpoints written by mmprompt before the core redesign (main at
b922ef0, ``tests/data/legacy_checkpoints``, made by its ``make_fixture.py``)
load into today's models and give the logits that code gave."""
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmprompt.registry import MODELS
from mmprompt.testing import random_tiny_clip, save_open_clip_weights

FIXTURES = Path(__file__).resolve().parents[2] / 'data' / 'legacy_checkpoints'
sys.path.insert(0, str(FIXTURES))
import make_fixture  # noqa: E402


@pytest.fixture(scope='module')
def expected():
    data = torch.load(FIXTURES / 'expected.pt', weights_only=True)
    clip = random_tiny_clip('mmprompt-tiny-vit', 0)
    checksum = float(clip.token_embedding.weight.detach().sum())
    if checksum != data['clip_checksum']:
        pytest.skip('random_tiny_clip(seed=0) gives other weights under '
                    'this torch version than when the fixture was made')
    return data


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('clip') / 'tiny_clip.pt'
    save_open_clip_weights(random_tiny_clip('mmprompt-tiny-vit', 0), path)
    return str(path)


@pytest.mark.parametrize('name', sorted(make_fixture.HEADS))
def test_old_checkpoint_gives_the_same_logits(tmp_path, expected, clip_file,
                                              name):
    config = tmp_path / f'{name}.py'
    config.write_text(
        make_fixture.config_text(
            str(tmp_path), clip_file, make_fixture.HEADS[name]))
    model = MODELS.build(Config.fromfile(str(config)).model)
    # mmengine's loader, as tools/test.py and --resume read checkpoints
    # (mmprompt routes it through its weights-only loading)
    checkpoint = load_checkpoint(
        model, str(FIXTURES / f'{name}_epoch_1.pth'), strict=True)
    assert 'rng_state' in checkpoint and 'optimizer' in checkpoint
    model.set_class_names(expected['classes'])
    model.eval()
    with torch.no_grad():
        logits = model(make_fixture.fixed_images())
    torch.testing.assert_close(
        logits, expected['logits'][name], rtol=1e-5, atol=1e-5)
