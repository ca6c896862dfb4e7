# Copyright (c) mmprompt contributors. All rights reserved.
"""Which format and activation a local CLIP weight file is read with.

The shipped tiny CLIPs use QuickGELU, like OpenAI's, so a wrong guess of the
format would change nothing there. These tests register GELU variants of
them (as ``ViT-B-16`` and ``RN50`` are in open_clip) so that reading an
OpenAI file as open_clip's shows in the features."""
import json
import logging

import open_clip
import pytest
import torch

import mmprompt.models.clip.openclip as openclip_module
from mmprompt.models import OpenCLIP
from mmprompt.models.clip.openclip import no_random_init_warning
from mmprompt.testing import (random_tiny_clip, save_open_clip_weights,
                              save_openai_state_dict, save_openai_torchscript)

SIZES = {'mmprompt-tiny-vit': 32, 'mmprompt-tiny-rn': 64}


@pytest.fixture(scope='module')
def gelu_archs(tmp_path_factory):
    """``<tiny arch>-gelu``: the tiny CLIPs with open_clip's default GELU."""
    folder = tmp_path_factory.mktemp('gelu_archs')
    names = {}
    for arch in SIZES:
        config = dict(open_clip.get_model_config(arch))
        config['quick_gelu'] = False
        path = folder / f'{arch}-gelu.json'
        path.write_text(json.dumps(config))
        open_clip.add_model_config(str(path))
        names[arch] = f'{arch}-gelu'
    return names


@pytest.fixture
def logs(monkeypatch):
    """The messages ``openclip.py`` logs, as ``(level, message)``."""
    records = []

    def record(msg, logger=None, level=logging.INFO):
        records.append((level, msg))

    monkeypatch.setattr(openclip_module, 'print_log', record)
    return records


def _quick_gelu_reference(model, quick_gelu):
    """open_clip's own model of ``model``'s arch with the given activation
    and ``model``'s weights."""
    arch = model.arch
    with no_random_init_warning():
        reference = open_clip.create_model(
            arch, pretrained=None, force_quick_gelu=quick_gelu)
    reference.load_state_dict(model.state_dict())
    return reference.eval()


def _features(clip, images, texts):
    with torch.no_grad():
        return (clip.encode_image(images),
                clip.encode_text_tokens(clip.tokenize(texts)))


def _activations(clip):
    found = {
        type(m).__name__
        for m in clip.model.modules()
        if type(m).__name__ in ('GELU', 'QuickGELU')
    }
    assert found == {clip.activation}
    return found


@pytest.mark.parametrize('base', sorted(SIZES))
def test_fp32_openai_state_dict_runs_with_quick_gelu(gelu_archs, base,
                                                     tmp_path, logs):
    """``clip_model.float().state_dict()`` of OpenAI's CLIP: fp32 tensors
    holding fp16 values. Read as OpenAI's, with QuickGELU, and said so."""
    arch = gelu_archs[base]
    model = random_tiny_clip(arch, seed=1)
    model.arch = arch
    path = tmp_path / 'openai_fp32.pt'
    save_openai_state_dict(model, str(path), dtype=torch.float32)
    assert all(v.dtype == torch.float32
               for v in torch.load(path, weights_only=True).values()
               if v.is_floating_point())

    clip = OpenCLIP(arch, pretrained=str(path))

    assert _activations(clip) == {'QuickGELU'}
    size = SIZES[base]
    images = torch.rand(2, 3, size, size)
    texts = ['a photo of a dog.', 'a centered satellite photo of a lake.']
    quick = _quick_gelu_reference(model, quick_gelu=True)
    gelu = _quick_gelu_reference(model, quick_gelu=False)
    image, text = _features(clip, images, texts)
    tokens = open_clip.get_tokenizer(arch)(texts)
    with torch.no_grad():
        torch.testing.assert_close(
            image, quick.encode_image(images), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            text, quick.encode_text(tokens), rtol=1e-5, atol=1e-6)
        # What main did: open_clip's format with the arch's GELU.
        assert not torch.allclose(
            text, gelu.encode_text(tokens), rtol=1e-4, atol=1e-5)
    # The choice is logged, and it is a guess from the numbers: a warning
    # that names the file, both readings and how to force the other one.
    warnings = [m for level, m in logs if level == logging.WARNING]
    assert len(warnings) == 1, logs
    message = warnings[0]
    assert str(path) in message
    assert "OpenAI's format" in message and 'QuickGELU' in message
    assert 'fp16' in message and "weights_format='open_clip'" in message


@pytest.mark.parametrize('base', sorted(SIZES))
def test_genuinely_fp32_open_clip_file_stays_open_clip(gelu_archs, base,
                                                       tmp_path, logs):
    """A model trained in fp32 holds values fp16 cannot: not OpenAI's
    release, read as open_clip's with the arch's own activation."""
    arch = gelu_archs[base]
    model = random_tiny_clip(arch, seed=2, fp16_exact=False)
    model.arch = arch
    path = tmp_path / 'open_clip_fp32.pt'
    save_open_clip_weights(model, str(path))

    clip = OpenCLIP(arch, pretrained=str(path))

    assert _activations(clip) == {'GELU'}
    size = SIZES[base]
    images = torch.rand(2, 3, size, size)
    texts = ['a photo of a dog.']
    image, text = _features(clip, images, texts)
    with torch.no_grad():
        torch.testing.assert_close(
            image, model.encode_image(images), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            text,
            model.encode_text(open_clip.get_tokenizer(arch)(texts)),
            rtol=1e-5,
            atol=1e-6)
    assert not [m for level, m in logs if level >= logging.WARNING], logs
    info = ' '.join(m for _, m in logs)
    assert str(path) in info
    assert "open_clip's format" in info and 'GELU' in info
    assert 'fp16 cannot represent' in info


def test_every_local_file_logs_its_format_and_activation(tmp_path, logs):
    model = random_tiny_clip('mmprompt-tiny-vit', seed=3)
    files = {
        'torchscript': tmp_path / 'ViT-like.pt',
        'fp16_state_dict': tmp_path / 'openai_fp16.pt',
        'fp32_open_clip_layout': tmp_path / 'open_clip.pt',
    }
    save_openai_torchscript(model, str(files['torchscript']))
    save_openai_state_dict(model, str(files['fp16_state_dict']))
    save_open_clip_weights(model, str(files['fp32_open_clip_layout']))
    for name, path in files.items():
        logs.clear()
        OpenCLIP('mmprompt-tiny-vit', pretrained=str(path))
        chosen = [m for _, m in logs if str(path) in m]
        assert len(chosen) == 1, (name, logs)
        assert "OpenAI's format" in chosen[0], name
        assert 'QuickGELU' in chosen[0], name
        # mmprompt-tiny-vit runs QuickGELU in either format: no warning.
        assert not [m for level, m in logs if level >= logging.WARNING], name
    logs.clear()
    OpenCLIP('mmprompt-tiny-vit', pretrained=str(files['torchscript']))
    assert 'TorchScript' in logs[-1][1]


def test_fp16_state_dict_on_a_gelu_arch_warns(gelu_archs, tmp_path, logs):
    arch = gelu_archs['mmprompt-tiny-vit']
    path = tmp_path / 'openai_fp16.pt'
    save_openai_state_dict(random_tiny_clip(arch), str(path))
    clip = OpenCLIP(arch, pretrained=str(path))
    assert _activations(clip) == {'QuickGELU'}
    warnings = [m for level, m in logs if level == logging.WARNING]
    assert len(warnings) == 1 and "weights_format='open_clip'" in warnings[0]


def test_weights_format_forces_the_reading(gelu_archs, tmp_path, logs):
    arch = gelu_archs['mmprompt-tiny-vit']
    exact = tmp_path / 'exact.pt'
    save_openai_state_dict(random_tiny_clip(arch), str(exact), torch.float32)
    clip = OpenCLIP(arch, pretrained=str(exact), weights_format='open_clip')
    assert _activations(clip) == {'GELU'}
    assert not [m for level, m in logs if level >= logging.WARNING], logs
    assert "weights_format='open_clip'" in logs[-1][1]

    # Forcing OpenAI's format on fp32 values rounds them to fp16 (as
    # OpenAI's build_model does): said, with the number of tensors changed.
    logs.clear()
    inexact = tmp_path / 'inexact.pt'
    save_open_clip_weights(
        random_tiny_clip(arch, fp16_exact=False), str(inexact))
    clip = OpenCLIP(arch, pretrained=str(inexact), weights_format='openai')
    assert _activations(clip) == {'QuickGELU'}
    warnings = [m for level, m in logs if level == logging.WARNING]
    assert len(warnings) == 1 and 'rounds' in warnings[0]
    assert str(inexact) in warnings[0]


def test_open_clip_file_the_openai_builder_cannot_make_is_open_clip(
        tmp_path, logs):
    """An fp16-exact open_clip file of an arch whose heads OpenAI's layout
    cannot express (``mmprompt-tiny-vit-deep``: 2 text heads of width 32)
    is not taken for OpenAI's."""
    model = random_tiny_clip('mmprompt-tiny-vit-deep', seed=4)
    path = tmp_path / 'deep.pt'
    save_open_clip_weights(model, str(path))
    clip = OpenCLIP('mmprompt-tiny-vit-deep', pretrained=str(path))
    texts = ['a photo of a dog.']
    with torch.no_grad():
        torch.testing.assert_close(
            clip.encode_text_tokens(clip.tokenize(texts)),
            model.encode_text(clip.tokenize(texts)),
            rtol=1e-5,
            atol=1e-6)
    assert "open_clip's format" in ' '.join(m for _, m in logs)
