# Copyright (c) mmprompt contributors. All rights reserved.
"""PromptInferencer on the random tiny CLIP and generated images."""
import mmcv
import numpy as np
import pytest
import torch
from inferencer_testing import CLASSES, make_clip, make_images, write_config
from PIL import Image

from mmprompt.apis import PromptInferencer
from mmprompt.utils import (CheckpointMismatchError, UnsafeCheckpointError,
                            record_trained_on)


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp('images'))


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp('clip'))


@pytest.fixture(scope='module')
def config(tmp_path_factory, clip_file):
    return write_config(
        tmp_path_factory.mktemp('cfg') / 'coop_tiny.py', clip_file)


@pytest.fixture(scope='module')
def trained_checkpoint(tmp_path_factory, config):
    """A checkpoint whose context differs from any fresh initialisation."""
    inferencer = PromptInferencer(config, class_names=CLASSES)
    learner = inferencer.model.head.prompt_learner
    with torch.no_grad():
        learner.ctx.copy_(torch.randn_like(learner.ctx))
    path = tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth'
    torch.save(
        dict(state_dict=inferencer.model.state_dict(), meta=dict(epoch=1)),
        path)
    return dict(path=str(path), inferencer=inferencer)


@pytest.fixture(scope='module')
def inferencer(config, trained_checkpoint):
    return PromptInferencer(
        config, trained_checkpoint['path'], class_names=CLASSES)


def test_outputs(inferencer, images):
    results = inferencer(images, topk=3)
    assert len(results) == len(images)
    for result in results:
        assert set(result) == {
            'pred_label', 'pred_score', 'pred_class', 'topk'
        }
        assert result['pred_class'] in CLASSES
        assert result['pred_class'] == CLASSES[result['pred_label']]
        assert len(result['topk']) == 3
        scores = [s for _, s in result['topk']]
        assert scores == sorted(scores, reverse=True)
        assert result['topk'][0] == (result['pred_class'],
                                     result['pred_score'])
        assert 0 < result['pred_score'] <= 1
    # One image alone is a list of one result.
    assert len(inferencer(images[0])) == 1


def test_topk_bounds(inferencer, images):
    result = inferencer(images[0], topk=100)[0]
    # All classes, each once: the probabilities of a softmax over them.
    assert sorted(c for c, _ in result['topk']) == sorted(CLASSES)
    assert sum(s for _, s in result['topk']) == pytest.approx(1, abs=1e-5)
    assert len(inferencer(images[0], topk=1)[0]['topk']) == 1
    with pytest.raises(ValueError, match='topk'):
        inferencer(images[0], topk=0)


def test_any_class_list(inferencer, images):
    """Scores follow the class names, whatever their order and number."""
    forward = inferencer(images, topk=4)
    backward = inferencer(images, class_names=CLASSES[::-1], topk=4)
    for a, b in zip(forward, backward):
        assert dict(a['topk']) == pytest.approx(dict(b['topk']), abs=1e-5)
        assert b['pred_class'] == CLASSES[::-1][b['pred_label']]
    two = inferencer(images, class_names=['zebra', 'cat'], topk=5)
    for result in two:
        assert result['pred_class'] in ('zebra', 'cat')
        assert len(result['topk']) == 2
    # The default classes are back for calls without class_names.
    assert inferencer(images[0])[0]['pred_class'] in CLASSES


def test_batch_equals_single(inferencer, images):
    batched = inferencer(images, topk=4, batch_size=3)
    single = [inferencer(path, topk=4)[0] for path in images]
    for a, b in zip(batched, single):
        assert a['pred_label'] == b['pred_label']
        assert dict(a['topk']) == pytest.approx(dict(b['topk']), abs=1e-6)


def test_array_and_pil_inputs(inferencer, images):
    """A BGR array (as mmcv.imread gives) or a PIL image equals the path."""
    from_path = inferencer(images[:2], topk=4)
    arrays = [mmcv.imread(p, backend='pillow') for p in images[:2]]
    from_array = inferencer(arrays, topk=4)
    pil = [Image.open(p) for p in images[:2]]
    from_pil = inferencer(pil, topk=4)
    for a, b, c in zip(from_path, from_array, from_pil):
        assert dict(a['topk']) == pytest.approx(dict(b['topk']), abs=1e-6)
        assert dict(a['topk']) == pytest.approx(dict(c['topk']), abs=1e-6)
    with pytest.raises(ValueError, match='HWC'):
        inferencer(np.zeros((4, 32, 32), dtype=np.uint8))


def test_checkpoint_is_loaded(config, trained_checkpoint, inferencer, images):
    saved = trained_checkpoint['inferencer']
    assert torch.equal(inferencer.model.head.prompt_learner.ctx,
                       saved.model.head.prompt_learner.ctx)
    expected = saved(images, topk=4)
    for a, b in zip(inferencer(images, topk=4), expected):
        assert dict(a['topk']) == pytest.approx(dict(b['topk']), abs=1e-6)
    fresh = PromptInferencer(config, class_names=CLASSES)
    assert not torch.equal(fresh.model.head.prompt_learner.ctx,
                           inferencer.model.head.prompt_learner.ctx)


def test_checkpoint_errors(tmp_path, clip_file, trained_checkpoint):
    # A checkpoint of 4 context vectors does not fit a model of 8.
    other = write_config(tmp_path / 'coop_m8.py', clip_file, n_ctx=8)
    with pytest.raises(ValueError, match='does not fit'):
        PromptInferencer(other, trained_checkpoint['path'])
    with pytest.raises(FileNotFoundError, match='no such file'):
        PromptInferencer(other, str(tmp_path / 'missing.pth'))
    # A pickle that would run code on load is refused by the safe loader.
    unsafe = tmp_path / 'unsafe.pth'
    torch.save(dict(state_dict={}, meta=dict(cls=Image.Image)), unsafe)
    with pytest.raises(UnsafeCheckpointError):
        PromptInferencer(other, str(unsafe))


def test_a_checkpoint_of_another_model_is_refused(tmp_path, config,
                                                  trained_checkpoint):
    """Its meta records another prompt learner or CLIP weights; the shapes
    fit."""
    model = trained_checkpoint['inferencer'].model
    checkpoint = dict(state_dict=model.state_dict(), meta=dict(epoch=1))
    record_trained_on(checkpoint, model, CLASSES)
    path = str(tmp_path / 'recorded.pth')
    torch.save(checkpoint, path)
    PromptInferencer(config, path)  # the model it was trained with
    middle = {'model.head.prompt_learner.class_token_position': 'middle'}
    with pytest.raises(
            CheckpointMismatchError,
            match=r"prompt_learner.class_token_position: 'end' in the "
            r"checkpoint, 'middle' in the config.*"
            r'ignore_checkpoint_meta=True'):
        PromptInferencer(config, path, cfg_options=middle)
    # Random CLIP weights instead of the file the prompt was trained on.
    with pytest.raises(
            CheckpointMismatchError,
            match=r"clip weights: the checkpoint was trained on "
            r"pretrained='\S*tiny-clip.pt', the config loads "
            r'pretrained=None'):
        PromptInferencer(
            config, path, cfg_options={'model.clip.pretrained': None})
    inferencer = PromptInferencer(
        config, path, cfg_options=middle, ignore_checkpoint_meta=True)
    assert torch.equal(inferencer.model.head.prompt_learner.ctx,
                       model.head.prompt_learner.ctx)


def test_class_names_needed(config, images):
    # The config's test set does not exist here: names must be given.
    inferencer = PromptInferencer(config)
    assert inferencer.class_names is None
    with pytest.raises(ValueError, match='no class names'):
        inferencer(images[0])
    assert inferencer(
        images[0], class_names=['a', 'b'])[0]['pred_class'] in ('a', 'b')


def test_csc_checkpoint_scores_its_own_classes(tmp_path, clip_file, images):
    config = write_config(
        tmp_path / 'csc.py', clip_file, csc=True, num_classes=4)
    model = PromptInferencer(config, class_names=CLASSES).model
    path = tmp_path / 'csc.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    inferencer = PromptInferencer(config, str(path))
    assert inferencer.class_names == CLASSES  # from the checkpoint
    assert inferencer(images[0])[0]['pred_class'] in CLASSES
    with pytest.raises(ValueError, match='class-specific'):
        inferencer(images[0], class_names=['w', 'x', 'y', 'z'])
    with pytest.raises(ValueError, match='class-specific'):
        PromptInferencer(config, str(path), class_names=['w', 'x', 'y', 'z'])
