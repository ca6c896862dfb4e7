# Copyright (c) mmprompt contributors. All rights reserved.
"""OpenCLIP's generic injection points against a straightforward loop over
open_clip's own modules: token rows written before text blocks, vision
tokens appended before ``ln_pre`` and overwritten before vision blocks.

The references (``coop_reference.text_tower`` and ``reference_image``
below) use nothing of mmprompt's but the open_clip model: the full 77
positions (no EOT cut), every block called as open_clip calls it, rows
written by indexing a copy of the hidden state."""
import pytest
import torch
from coop_reference import text_tower

from mmprompt.models import OpenCLIP
from mmprompt.testing import randomize_biases_

ARCHS = ['mmprompt-tiny-vit', 'mmprompt-tiny-vit-deep']


@pytest.fixture(scope='module', params=ARCHS)
def clip(request):
    torch.manual_seed(0)
    # Random biases: open_clip's are zero (randomize_biases_).
    clip = OpenCLIP(request.param, pretrained=None)
    randomize_biases_(clip.model)
    return clip


def reference_image(visual, images, append, overwrite):
    """open_clip's ViT with tokens appended before ln_pre and replaced before
    given blocks."""
    x = visual.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding
    n = append.shape[-2]
    x = torch.cat([x, append.expand(x.shape[0], -1, -1)], dim=1)
    x = visual.ln_pre(x)
    for i, block in enumerate(visual.transformer.resblocks):
        if i in overwrite:
            x = x.clone()
            x[:, -n:] = overwrite[i]
        x = block(x)
    return visual.ln_post(x[:, 0]) @ visual.proj


def prompts_of(clip, texts):
    tokens = clip.tokenize(texts)
    return clip.token_embedding(tokens).detach(), clip.eot_positions(tokens)


@pytest.mark.parametrize('per_sequence', [False, True])
def test_text_rows_before_blocks(clip, per_sequence):
    embeddings, eot = prompts_of(
        clip, ['X X X a dog.', 'X X X sea lion.', 'X X X a tench, a fish.'])
    blocks = len(clip.text_blocks)
    generator = torch.Generator().manual_seed(1)
    shape = (3, 2, clip.width) if per_sequence else (2, clip.width)
    overwrite = {
        i: (1 + i % 2, torch.randn(*shape,
                                   generator=generator).requires_grad_())
        for i in range(blocks) if i != 1
    }
    ours = clip.encode_text(embeddings, eot, overwrite)
    theirs = text_tower(clip.model, embeddings, eot, overwrite)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    rows = [r for _, r in overwrite.values()]
    grads = torch.autograd.grad(ours.square().sum(), rows)
    expected = torch.autograd.grad(theirs.square().sum(), rows)
    for mine, ref in zip(grads, expected):
        assert ref.abs().sum() > 0
        torch.testing.assert_close(
            mine, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_text_without_rows_is_open_clip(clip):
    tokens = clip.tokenize(['a photo of a dog.', 'sea lion'])
    torch.testing.assert_close(
        clip.encode_text_tokens(tokens),
        clip.model.encode_text(tokens),
        rtol=1e-5,
        atol=1e-5)


def test_text_rows_after_the_last_eot_change_nothing(clip):
    """Rows written past every EOT (cut by the truncation) are exact: the
    reference writes them into the full 77 positions."""
    embeddings, eot = prompts_of(clip, ['a dog.', 'a cat.'])
    rows = torch.randn(3, clip.width)
    overwrite = {0: (20, rows)}
    torch.testing.assert_close(
        clip.encode_text(embeddings, eot, overwrite),
        text_tower(clip.model, embeddings, eot, overwrite),
        rtol=1e-5,
        atol=1e-5)


@pytest.mark.parametrize('per_image', [False, True])
def test_vision_tokens_appended_and_overwritten(clip, per_image):
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 32, 32, generator=generator)
    width = clip.vision_width
    shape = (2, 3, width) if per_image else (3, width)
    append = torch.randn(*shape, generator=generator).requires_grad_()
    blocks = len(clip.model.visual.transformer.resblocks)
    # before the last block too: its query runs at the class token only
    overwrite = {
        i: torch.randn(*shape, generator=generator).requires_grad_()
        for i in range(1, blocks)
    }
    ours = clip.encode_image(images, append, overwrite)
    theirs = reference_image(clip.model.visual, images, append, overwrite)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    inputs = [append] + list(overwrite.values())
    grads = torch.autograd.grad(ours.square().sum(), inputs)
    expected = torch.autograd.grad(theirs.square().sum(), inputs)
    for mine, ref in zip(grads, expected):
        assert ref.abs().sum() > 0
        torch.testing.assert_close(
            mine, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_appended_tokens_change_the_features(clip):
    images = torch.rand(2, 3, 32, 32)
    plain = clip.encode_image(images)
    torch.testing.assert_close(plain, clip.model.encode_image(images))
    prompted = clip.encode_image(images, torch.randn(2, clip.vision_width))
    assert not torch.allclose(plain, prompted, atol=1e-4)


def test_bad_injections_are_refused(clip):
    embeddings, eot = prompts_of(clip, ['a dog.'])
    rows = torch.zeros(2, clip.width)
    blocks = len(clip.text_blocks)
    with pytest.raises(ValueError, match=f'blocks 0..{blocks - 1}'):
        clip.encode_text(embeddings, eot, {blocks: (1, rows)})
    with pytest.raises(ValueError, match='outside the 77 positions'):
        clip.encode_text(embeddings, eot, {0: (76, rows)})
    images = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match='pass append too'):
        clip.encode_image(images, overwrite={1: torch.zeros(2, 8)})
    append = torch.zeros(2, clip.vision_width)
    with pytest.raises(ValueError, match='replace the 2 appended tokens'):
        clip.encode_image(images, append, {1: torch.zeros(3, 8)})


def test_vision_tokens_need_a_class_token_vit():
    rn = OpenCLIP('mmprompt-tiny-rn', pretrained=None)
    assert rn.vision_width is None and not rn.pools_class_token
    with pytest.raises(ValueError, match='ModifiedResNet, not a ViT'):
        rn.encode_image(torch.rand(1, 3, 64, 64), torch.zeros(2, 16))
    vit = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
    vit.model.visual.pool_type = 'avg'  # added tokens would be averaged in
    try:
        with pytest.raises(ValueError, match='pools with .avg.'):
            vit.encode_image(torch.rand(1, 3, 32, 32), torch.zeros(2, 64))
    finally:
        vit.model.visual.pool_type = 'tok'


@pytest.mark.parametrize('pool', ['first', 'last'])
def test_towers_pooled_elsewhere_than_the_eot(pool):
    """A text tower pooled at its first or last position (built with
    truncate_text=False, as the EOT cut would be wrong) is pooled there."""
    clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None, truncate_text=False)
    clip.model.text_pool_type = pool
    tokens = clip.tokenize(['a photo of a dog.', 'sea lion'])
    expected = 0 if pool == 'first' else tokens.shape[1] - 1
    assert clip.eot_positions(tokens).tolist() == [expected] * 2
    torch.testing.assert_close(
        clip.encode_text_tokens(tokens), clip.model.encode_text(tokens))


def _fp16_copies(rows, batch):
    """The deep-prompt originals' injection: ``rows.expand(B, ...).half()``
    concatenated with fp32 activations."""
    return rows.expand(batch, -1, -1).half().float()


def fp16_rounded_close(got, expected, fraction=0.9):
    """Gradients summed over fp16-rounded copies agree up to one-ulp
    flips of single copies (where fp32 sums of another order differ in
    the last bit): most elements to 1e-5 of the largest, none beyond an
    fp16 ulp of it."""
    scale = expected.abs().max()
    error = (got - expected).abs()
    return bool((error <= 1e-5 * scale).float().mean() >= fraction
                and error.max() <= 2**-9 * scale)


def test_rows_dtype_rounds_each_copy(clip):
    """``rows_dtype`` rounds the injected value and each sequence's (each
    image's) own gradient before the sum over copies, as the originals'
    ``p.expand(B, -1, -1).half()`` in their fp32 path; rounding before the
    expansion gives other gradients."""
    generator = torch.Generator().manual_seed(3)
    embeddings, eot = prompts_of(
        clip, ['X X a dog.', 'X X sea lion.', 'X X a tench, a fish.'])
    rows = torch.randn(2, clip.width, generator=generator).requires_grad_()
    ours = clip.encode_text(
        embeddings, eot, {1: (1, rows)}, rows_dtype=torch.float16)
    theirs = text_tower(clip.model, embeddings, eot,
                        {1: (1, _fp16_copies(rows, 3))})
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    weights = torch.randn(ours.shape, generator=generator)
    grad, = torch.autograd.grad((ours * weights).sum(), rows)
    expected, = torch.autograd.grad((theirs * weights).sum(), rows)
    assert fp16_rounded_close(grad, expected)
    once = text_tower(clip.model, embeddings, eot,
                      {1: (1, rows.half().float())})
    once_grad, = torch.autograd.grad((once * weights).sum(), rows)
    assert not fp16_rounded_close(once_grad, expected)

    images = torch.randn(3, 3, 32, 32, generator=generator)
    width = clip.vision_width
    append = torch.randn(2, width, generator=generator).requires_grad_()
    deep = torch.randn(2, width, generator=generator).requires_grad_()
    ours = clip.encode_image(
        images, append, {1: deep}, rows_dtype=torch.float16)
    theirs = reference_image(clip.model.visual, images,
                             _fp16_copies(append,
                                          3), {1: _fp16_copies(deep, 3)})
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    weights = torch.randn(ours.shape, generator=generator)
    grads = torch.autograd.grad((ours * weights).sum(), [append, deep])
    expected = torch.autograd.grad((theirs * weights).sum(), [append, deep])
    plain = torch.autograd.grad(
        (clip.encode_image(images, append, {1: deep}) * weights).sum(),
        [append, deep])
    for mine, ref, unrounded in zip(grads, expected, plain):
        assert fp16_rounded_close(mine, ref)
        assert not fp16_rounded_close(unrounded, ref)
