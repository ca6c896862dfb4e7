# Copyright (c) mmprompt contributors. All rights reserved.
import os

import open_clip
import pytest
import torch
from open_clip.model import build_model_from_openai_state_dict

from mmprompt.models import OpenCLIP
from mmprompt.registry import MODELS
from mmprompt.testing import (random_tiny_clip, save_open_clip_weights,
                              save_openai_state_dict, save_openai_torchscript)

ARCHS = {'mmprompt-tiny-vit': 32, 'mmprompt-tiny-rn': 64}
TEXTS = [
    'a photo of a dog.', 'x', 'a centered satellite photo of sea or lake.',
    'a photo of a 2012 AM General Hummer SUV, a type of car, parked.'
]

pytestmark = pytest.mark.filterwarnings('ignore::FutureWarning')


@pytest.fixture(scope='module', params=sorted(ARCHS))
def weight_files(request, tmp_path_factory):
    """One random tiny CLIP saved in every format ``pretrained`` takes."""
    arch = request.param
    model = random_tiny_clip(arch, seed=3)
    root = tmp_path_factory.mktemp(arch)
    files = {
        'open_clip': root / 'open_clip.pt',
        'open_clip_wrapped': root / 'open_clip_ckpt.pt',
        'openai_state_dict': root / 'openai_sd.pt',
        'openai_torchscript': root / 'ViT-B-16-like.pt',
    }
    save_open_clip_weights(model, str(files['open_clip']))
    save_open_clip_weights(
        model, str(files['open_clip_wrapped']), wrapped=True)
    save_openai_state_dict(model, str(files['openai_state_dict']))
    save_openai_torchscript(model, str(files['openai_torchscript']))
    return arch, model, files


def test_every_pretrained_form_loads_the_same_weights(weight_files):
    arch, reference, files = weight_files
    size = ARCHS[arch]
    images = torch.rand(2, 3, size, size)
    with torch.no_grad():
        expected_image = reference.encode_image(images)
        expected_text = reference.encode_text(reference_tokens(arch))
    for form, path in files.items():
        clip = OpenCLIP(arch, pretrained=str(path))
        with torch.no_grad():
            image = clip.encode_image(images)
            text = clip.encode_text_tokens(clip.tokenize(TEXTS))
        # All files hold the same fp16-exact numbers: identical up to the
        # rounding of the (shorter, truncated) text matmuls.
        torch.testing.assert_close(
            image, expected_image, rtol=1e-5, atol=1e-6, msg=form)
        torch.testing.assert_close(
            text, expected_text, rtol=1e-5, atol=1e-6, msg=form)


def reference_tokens(arch):
    return open_clip.get_tokenizer(arch)(TEXTS)


def test_openai_format_runs_with_quick_gelu(weight_files):
    arch, _, files = weight_files
    clip = OpenCLIP(arch, pretrained=str(files['openai_torchscript']))
    acts = {type(m).__name__ for m in clip.model.modules()}
    assert 'QuickGELU' in acts


def test_forcing_open_clip_format_on_torchscript_is_refused(weight_files):
    arch, _, files = weight_files
    with pytest.raises(ValueError, match='TorchScript'):
        OpenCLIP(
            arch,
            pretrained=str(files['openai_torchscript']),
            weights_format='open_clip')


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_truncated_text_encoder_equals_open_clip_encode_text(arch):
    clip = OpenCLIP(arch, pretrained=None)
    tokens = clip.tokenize(TEXTS)
    assert int(tokens.argmax(-1).max()) + 1 < clip.context_length
    with torch.no_grad():
        ours = clip.encode_text_tokens(tokens)
        theirs = clip.model.encode_text(tokens)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    # and it is the same computation as the full-length path
    full = OpenCLIP(arch, pretrained=None, truncate_text=False)
    object.__setattr__(full, 'model', clip.model)
    object.__setattr__(full, '_text', clip.model)
    with torch.no_grad():
        torch.testing.assert_close(
            full.encode_text_tokens(tokens), theirs, rtol=0, atol=0)


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_image_encoder_equals_open_clip_encode_image(arch):
    clip = OpenCLIP(arch, pretrained=None)
    size = ARCHS[arch]
    images = torch.rand(
        3, 3, size, size, generator=torch.Generator().manual_seed(0))
    # A ViT pooled at its class token runs its last block at that token
    # only, not through the block's own forward over every position.
    assert clip.pools_class_token == ('vit' in arch)
    visual = clip.model.visual
    last_block_calls = []
    if 'vit' in arch:
        visual.transformer.resblocks[-1].register_forward_hook(
            lambda *_: last_block_calls.append(1))
    with torch.no_grad():
        ours = clip.encode_image(images)
        theirs = clip.model.encode_image(images)
    assert len(last_block_calls) == (1 if 'vit' in arch else 0)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    if 'vit' in arch:
        # another pooling falls back to open_clip's own forward
        clip.model.visual.pool_type = 'avg'
        assert not clip.pools_class_token
        with torch.no_grad():
            torch.testing.assert_close(
                clip.encode_image(images),
                clip.model.encode_image(images),
                rtol=0,
                atol=0)


@pytest.mark.parametrize('variant', ['vit', 'rn'])
def test_golden_openai_weight_files_load(golden_dir, variant):
    path = golden_dir / f'tiny-{variant}' / 'openai_state_dict.pt'
    arch = f'mmprompt-tiny-{variant}'
    clip = OpenCLIP(arch, pretrained=str(path))
    state_dict = torch.load(path, weights_only=True)
    reference = build_model_from_openai_state_dict(
        dict(state_dict), cast_dtype=torch.float32).float().eval()
    inputs = torch.load(
        golden_dir / f'tiny-{variant}' / 'inputs.pt', weights_only=True)
    tokens = clip.tokenize(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(
            clip.encode_image(inputs['images']),
            reference.encode_image(inputs['images']),
            rtol=1e-5,
            atol=1e-6)
        torch.testing.assert_close(
            clip.encode_text_tokens(tokens),
            reference.encode_text(tokens),
            rtol=1e-5,
            atol=1e-6)
    assert clip.logit_scale.item() == pytest.approx(
        state_dict['logit_scale'].float().item())


def test_frozen_and_always_in_eval_mode():
    clip = OpenCLIP('mmprompt-tiny-rn', pretrained=None)
    assert all(not p.requires_grad for p in clip.model.parameters())
    # Not part of the parameters an optimizer or DDP would see, nor saved.
    assert list(clip.parameters()) == []
    assert clip.state_dict() == {}
    clip.train()
    assert clip.training
    assert not any(m.training for m in clip.model.modules())
    bn = clip.model.visual.bn1
    before = bn.running_mean.clone()
    clip.encode_image(torch.rand(4, 3, 64, 64) * 5)
    torch.testing.assert_close(bn.running_mean, before, rtol=0, atol=0)


def test_precisions():
    for precision, dtype in [('fp32', torch.float32), ('fp16', torch.float16),
                             ('bf16', torch.bfloat16)]:
        clip = OpenCLIP('mmprompt-tiny-vit', None, precision=precision)
        assert clip.dtype == dtype
        assert clip.model.visual.conv1.weight.dtype == dtype
        feats = clip.encode_image(torch.rand(1, 3, 32, 32))
        assert feats.dtype == dtype
    with pytest.raises(ValueError, match=r"precision must be one of .*'fp8'"):
        OpenCLIP('mmprompt-tiny-vit', None, precision='fp8')


def test_registered_and_built_from_config():
    clip = MODELS.build(
        dict(type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None))
    assert isinstance(clip, OpenCLIP)
    assert (clip.width, clip.embed_dim, clip.context_length) == (64, 64, 77)


def test_device_moves_reach_the_hidden_model():
    clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
    clip.to(torch.float64)
    assert clip.model.visual.conv1.weight.dtype == torch.float64


class TestErrors:

    def test_unknown_arch_suggests_close_names(self):
        with pytest.raises(ValueError, match=r"ViT-B-17.*ViT-B-16"):
            OpenCLIP('ViT-B-17', pretrained=None)

    def test_missing_file_names_the_path_and_the_forms(self, tmp_path):
        path = tmp_path / 'nope' / 'ViT-B-16.pt'
        with pytest.raises(FileNotFoundError) as err:
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(path))
        assert str(path) in str(err.value)
        assert 'TorchScript' in str(err.value)

    def test_unknown_tag_lists_tags_and_local_forms(self):
        with pytest.raises(ValueError) as err:
            OpenCLIP('ViT-B-16', pretrained='not-a-tag')
        assert 'openai' in str(err.value) and 'local file' in str(err.value)

    def test_tag_without_network_lists_local_forms(self, tmp_path,
                                                   monkeypatch):
        monkeypatch.setenv('HF_HUB_OFFLINE', '1')
        monkeypatch.setattr(open_clip, 'create_model',
                            _raise(OSError('We could not connect to the Hub')))
        with pytest.raises(RuntimeError) as err:
            OpenCLIP('ViT-B-16', pretrained='openai', cache_dir=str(tmp_path))
        message = str(err.value)
        assert "'openai'" in message and 'network' in message
        assert 'local file' in message and 'TorchScript' in message

    def test_not_a_weight_file(self, tmp_path):
        path = tmp_path / 'notes.pt'
        path.write_text('hello')
        with pytest.raises(ValueError, match="text file .*'hello'"):
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(path))
        torch.save({'w': torch.ones(4)}, path)
        path.write_bytes(path.read_bytes()[:100])  # truncated
        with pytest.raises(ValueError, match='could not be read'):
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(path))
        torch.save([1, 2, 3], path)
        with pytest.raises(ValueError, match='expected a state dict'):
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(path))

    @pytest.mark.parametrize('text', [
        'tiny weights, see README\n', 'url: https://example.com/ViT-B-16.pt\n',
        'model = dict(type="OpenCLIP")\n', ''
    ])
    def test_text_file_as_pretrained(self, tmp_path, text):
        # Texts starting with t, u, e (pickle opcodes that pop) raised
        # "IndexError: pop from empty list".
        path = tmp_path / 'ViT-B-16.txt'
        path.write_text(text)
        with pytest.raises(ValueError) as err:
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(path))
        message = str(err.value)
        assert str(path) in message and 'not a CLIP weight file' in message
        assert 'text file' in message or 'empty' in message
        assert 'torch.save' in message

    def test_directory_as_pretrained(self, tmp_path):
        folder = tmp_path / 'ViT-B-16'
        folder.mkdir()
        (folder / 'open_clip_pytorch_model.bin').write_bytes(b'')
        (folder / 'README.md').write_text('weights')
        with pytest.raises(IsADirectoryError) as err:
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(folder))
        message = str(err.value)
        assert str(folder) in message and 'directory' in message
        # the weight files in it are named, to pick one
        assert 'open_clip_pytorch_model.bin' in message
        assert 'README.md' not in message
        with pytest.raises(IsADirectoryError, match='no weight file'):
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(tmp_path / '..'))

    def test_safetensors_file_loads(self, tmp_path):
        safetensors = pytest.importorskip('safetensors.torch')
        model = random_tiny_clip('mmprompt-tiny-vit', fp16_exact=False)
        path = tmp_path / 'open_clip_model.safetensors'
        safetensors.save_file(model.state_dict(), str(path))
        clip = OpenCLIP('mmprompt-tiny-vit', pretrained=str(path))
        images = torch.rand(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(
                clip.encode_image(images),
                model.encode_image(images),
                rtol=1e-5,
                atol=1e-6)

    @pytest.mark.parametrize('arch,size,wrong', [
        ('mmprompt-tiny-vit', 32, 64),
        ('mmprompt-tiny-vit', 32, 36),
        ('mmprompt-tiny-rn', 64, 96),
        ('mmprompt-tiny-rn', 64, 80),
    ])
    def test_image_size_that_does_not_fit_the_tower(self, arch, size, wrong):
        """The positional embedding fixes the input size of CLIP's ViTs and
        ResNets (attention pooling): other sizes failed deep in the tower
        ('size of tensor a (65) must match ... (17)') or, a few pixels off,
        silently dropped the border the stride does not cover."""
        clip = OpenCLIP(arch, pretrained=None)
        with pytest.raises(ValueError) as err:
            clip.encode_image(torch.rand(1, 3, wrong, wrong))
        message = str(err.value)
        assert f'{wrong}x{wrong}' in message and f'{size}x{size}' in message
        assert repr(arch) in message
        assert 'CenterCrop' in message and 'RandomResizedCrop' in message
        assert clip.encode_image(torch.rand(1, 3, size, size)).shape == (1, 64)

    def test_weights_of_another_arch(self, tmp_path):
        rn = random_tiny_clip('mmprompt-tiny-rn')
        openai_file = tmp_path / 'rn_openai.pt'
        save_openai_state_dict(rn, str(openai_file))
        with pytest.raises(ValueError, match="not a 'mmprompt-tiny-vit'"):
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(openai_file))
        open_clip_file = tmp_path / 'rn_open_clip.pt'
        # An fp16-exact file is taken for OpenAI's (the error says why)...
        save_open_clip_weights(rn, str(open_clip_file))
        with pytest.raises(ValueError, match="taken for OpenAI's format"):
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(open_clip_file))
        # ... one trained in fp32 cannot be.
        save_open_clip_weights(
            random_tiny_clip('mmprompt-tiny-rn', fp16_exact=False),
            str(open_clip_file))
        with pytest.raises(ValueError, match='do not fit arch'):
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(open_clip_file))

    def test_code_running_weight_file_is_refused(self, tmp_path):
        marker = tmp_path / 'pwned'
        path = tmp_path / 'evil.pt'
        torch.save({'x': _Evil(str(marker))}, path)
        with pytest.raises(Exception, match='refusing to load'):
            OpenCLIP('mmprompt-tiny-vit', pretrained=str(path))
        assert not marker.exists()

    def test_text_tower_that_cannot_be_truncated(self):
        clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        clip.model.attn_mask = None
        with pytest.raises(ValueError, match='truncate_text=False'):
            clip._check_truncation_is_exact()

    def test_prompt_longer_than_the_context(self):
        clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        with pytest.raises(ValueError, match='more than the 77'):
            clip.tokenize(['word ' * 80])


class _Evil:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def _raise(error):

    def fail(*args, **kwargs):
        raise error

    return fail
