# Copyright (c) mmprompt contributors. All rights reserved.
"""Independent computations of CLIP text features and CoOp / CoCoOp logits.

It writes each class's prompt as text with a placeholder word per context
vector ("X X X X dog.", "X X dog X X.", "dog X X X X."), tokenizes it with
open_clip, and runs open_clip's own ``CLIP.encode_text`` (full 77 tokens,
one call per image) with the placeholders' embeddings replaced by the
context. No code of mmprompt's prompt layout, truncation or batching is used.
"""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F


class _Substitute(nn.Module):

    def __init__(self, embedding, positions, vectors):
        super().__init__()
        self.embedding = embedding
        self.positions = positions  # list of (K,) index tensors
        self.vectors = vectors  # (K, M, W)

    def forward(self, tokens):
        out = self.embedding(tokens).clone()
        for row, positions in enumerate(self.positions):
            out[row, positions] = self.vectors[row].to(out.dtype)
        return out


@contextlib.contextmanager
def substituted(model, positions, vectors):
    original = model.token_embedding
    model.token_embedding = _Substitute(original, positions, vectors)
    try:
        yield
    finally:
        model.token_embedding = original


def prompt_text(name, n_ctx, position):
    name = name.replace('_', ' ')
    if position == 'end':
        words = ['X'] * n_ctx + [name]
    elif position == 'middle':
        half = n_ctx // 2
        words = ['X'] * half + [name] + ['X'] * (n_ctx - half)
    else:
        words = [name] + ['X'] * n_ctx
    return ' '.join(words) + '.'


def text_features(model, tokenizer, names, ctx, position='end'):
    """open_clip text features of prompts with ``ctx`` ((M, W) shared or
    (K, M, W) per class) in place of the placeholder words."""
    n_ctx = ctx.shape[-2]
    tokens = tokenizer([prompt_text(n, n_ctx, position) for n in names])
    x_id = tokenizer.encode('X')[0]
    positions = [(row == x_id).nonzero().flatten() for row in tokens]
    assert all(len(p) == n_ctx for p in positions)
    if ctx.dim() == 2:
        ctx = ctx.unsqueeze(0).expand(len(names), -1, -1)
    with substituted(model, positions, ctx):
        return model.encode_text(tokens)


def coop_logits(model, tokenizer, image_features, names, ctx, position):
    g = F.normalize(
        text_features(model, tokenizer, names, ctx, position), dim=-1)
    return model.logit_scale.exp() * image_features @ g.t()


def cocoop_logits(model, tokenizer, image_features, names, ctx, meta_net):
    w1, b1 = meta_net.linear1.weight, meta_net.linear1.bias
    w2, b2 = meta_net.linear2.weight, meta_net.linear2.bias
    rows = []
    for f in image_features:  # one text pass per image, as the original
        shift = torch.relu(f @ w1.t() + b1) @ w2.t() + b2
        g = text_features(model, tokenizer, names, ctx + shift, 'end')
        g = F.normalize(g, dim=-1)
        rows.append(model.logit_scale.exp() * f @ g.t())
    return torch.stack(rows)


def text_tower(model, embeddings, eot, overwrite=None):
    """open_clip's text tower on full-length ``embeddings`` ``(N, L, W)``,
    the rows ``start..`` of the hidden state replaced before block ``i`` by
    ``overwrite[i] = (start, rows)``, rows ``(n, W)`` or ``(N, n, W)``."""
    overwrite = overwrite or {}
    x = embeddings + model.positional_embedding
    for i, block in enumerate(model.transformer.resblocks):
        if i in overwrite:
            start, rows = overwrite[i]
            x = x.clone()
            x[:, start:start + rows.shape[-2]] = rows
        x = block(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    return x[torch.arange(x.shape[0]), eot] @ model.text_projection


def deep_text_features(model, tokenizer, names, ctx, rows):
    """Features of ``[SOT] ctx name. [EOT]`` (``ctx`` ``(M, W)``), the rows
    ``1..n`` replaced before block ``i`` by ``rows[i]`` ``(n, W)``."""
    n_ctx = ctx.shape[-2]
    tokens = tokenizer([prompt_text(n, n_ctx, 'end') for n in names])
    embeddings = model.token_embedding(tokens).clone()
    embeddings[:, 1:1 + n_ctx] = ctx
    return text_tower(model, embeddings, tokens.argmax(-1), {
        i: (1, r)
        for i, r in rows.items()
    })
