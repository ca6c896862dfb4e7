# Copyright (c) mmprompt contributors. All rights reserved.
"""The fast text encoder: shared prompt prefixes encoded once."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock

from mmprompt.registry import MODELS
from ..prompt_learners import Prompts
from .plain import PlainTextEncoder

__all__ = ['PrefixCachedTextEncoder']

#: Per layer, the keys and values of the prefix, ``(G, heads, P, hd)`` each.
KVCache = List[Tuple[torch.Tensor, torch.Tensor]]


@MODELS.register_module()
class PrefixCachedTextEncoder(PlainTextEncoder):
    """Encode :class:`Prompts` whose prompts share a prefix, exactly and
    fast.

    Prompts whose class name comes last share their first ``P = 1 + M``
    positions (SOT and the context) within a group: all classes for CoOp,
    all classes of one image for CoCoOp. Under the causal mask the hidden
    states of those positions depend on nothing after them, so:

    * the prefix goes through the text tower once per group, keeping each
      layer's keys and values (deep text rows, which sit at positions
      ``1..n < P``, are written into it before their blocks);
    * the remaining positions of all ``K`` prompts (class name, ``.``, EOT)
      are packed one after another, each prompt cut at its own EOT, and
      attend to the cached prefix: the linear layers run as a few large
      matrix products, attention per run of equal-length prompts, the first
      layer's projections once for all groups, and the last layer at the
      EOT positions only;
    * on a CPU the packed positions are cut into calls of about
      ``cpu_text_rows`` (images x positions) so that a call's activations
      stay in the processor's cache; ``text_chunk_size`` and
      ``grad_checkpointing`` bound memory as in :class:`PlainTextEncoder`.

    The logits and gradients equal :class:`PlainTextEncoder`'s (tests
    compare both with open_clip's own ``encode_text`` on full prompts).
    Prompts without a shared prefix (class-specific contexts, the class name
    in the middle or front) and text towers of other blocks go through
    :class:`PlainTextEncoder`.

    Args:
        clip (OpenCLIP): The frozen CLIP (the head passes it).
        text_chunk_size (int, optional): At most this many prompts per call.
            Defaults to None.
        grad_checkpointing (bool): Recompute activations in backward.
            Defaults to False.
        cpu_text_rows (int): On a CPU, about this many packed text positions
            per call: larger calls run no faster and fall out of the cache.
            Defaults to 1024.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.models import (CoCoOpPromptLearner, OpenCLIP,
        ...                              PrefixCachedTextEncoder)
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> learner = CoCoOpPromptLearner(clip, n_ctx=4)
        >>> learner.set_class_names(['cat', 'dog', 'bird'])
        >>> prompts = learner(torch.randn(2, 64))
        >>> PrefixCachedTextEncoder(clip)(prompts).shape  # (B, K, D)
        torch.Size([2, 3, 64])
    """

    def __init__(self,
                 clip: Optional[nn.Module] = None,
                 text_chunk_size: Optional[int] = None,
                 grad_checkpointing: bool = False,
                 cpu_text_rows: int = 1024,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            clip,
            text_chunk_size=text_chunk_size,
            grad_checkpointing=grad_checkpointing,
            init_cfg=init_cfg)
        if not isinstance(cpu_text_rows, int) or cpu_text_rows < 1:
            raise ValueError('cpu_text_rows must be a positive int, got '
                             f'{cpu_text_rows!r}')
        self.cpu_text_rows = cpu_text_rows
        self._plan_key = None
        self._plan = None

    @property
    def tower_supported(self) -> bool:
        """Whether the CLIP's text tower fits this encoder: causal and pooled
        at the EOT (``truncate_text``, checked when the CLIP is built) and
        made of open_clip's standard residual attention blocks."""
        clip = self.clip
        if not getattr(clip, 'truncate_text', False):
            return False
        blocks = getattr(clip, 'text_blocks', None) or ()
        return len(blocks) > 0 and all(
            type(b) is ResidualAttentionBlock and not hasattr(b, 'ln_1_kv')
            for b in blocks)

    def applies(self, prompts: Prompts) -> bool:
        """Whether ``prompts`` share a prefix this encoder can cache."""
        start = prompts.shared_prefix
        return start > 0 and self.tower_supported and all(
            1 + rows.shape[-2] <= start for rows in prompts.text_rows.values())

    def forward(self, prompts: Prompts) -> torch.Tensor:
        """Text features of every prompt, ``(G, K, embed_dim)``."""
        if not self.applies(prompts):
            return super().forward(prompts)
        tokens = prompts.class_tokens
        groups, start = prompts.groups, prompts.shared_prefix
        sot = tokens.sot.expand(groups, -1, -1)  # (G, 1, W)
        context = prompts.context[:, 0].to(sot.dtype)  # (G, M, W)
        cache = self.encode_prefix(
            torch.cat([sot, context], dim=1), prompts.text_rows,
            prompts.rows_dtype)
        chunks, inverse = self._suffix_plan(tokens, groups, start)

        def encode(class_index, position, lengths):
            suffix = tokens.suffix[class_index, position]  # (N, W)
            return self.encode_suffix(cache, suffix, lengths)

        features = torch.cat([self._run(encode, *chunk) for chunk in chunks],
                             dim=1)
        return features[:, inverse]

    # ------------------------------------------------------------------
    # the plan: which classes each call encodes
    # ------------------------------------------------------------------
    def _suffix_plan(self, tokens, groups: int, start: int) -> tuple:
        """How :meth:`forward` splits the classes.

        The classes are sorted by prompt length and cut into chunks of at
        most ``text_chunk_size`` prompts and, on a CPU, about
        ``cpu_text_rows`` text positions (on a GPU one chunk, as large as
        memory allows, is fastest). Cached until the class tokens or the
        settings change.

        Returns:
            tuple: ``(chunks, inverse)``: for each chunk the class and
            position indices of its packed suffix and the prompts' lengths;
            ``inverse`` puts the features back in label order.
        """
        device = tokens.embeddings.device
        key = (tokens.embeddings.data_ptr(), tokens.version, groups, start,
               device, self.text_chunk_size, self.cpu_text_rows)
        if self._plan_key == key:
            return self._plan
        lengths = [eot + 1 - start for eot in tokens.eot.tolist()]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        max_classes = self._classes_per_call(groups, len(order))
        max_rows = self.cpu_text_rows if device.type == 'cpu' else None
        chunks, current, rows = [], [], 0
        for index in order:
            rows_after = rows + groups * lengths[index]
            if current and (len(current) == max_classes or
                            (max_rows is not None and rows_after > max_rows)):
                chunks.append(current)
                current, rows_after = [], groups * lengths[index]
            current.append(index)
            rows = rows_after
        chunks.append(current)
        plan = []
        for classes in chunks:
            chunk_lengths = [lengths[index] for index in classes]
            class_index = torch.tensor(
                [index for index in classes for _ in range(lengths[index])],
                device=device)
            position = torch.cat(
                [torch.arange(lengths[index]) for index in classes])
            plan.append((class_index, position.to(device), chunk_lengths))
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        self._plan = (plan, inverse.to(device))
        self._plan_key = key
        return self._plan

    # ------------------------------------------------------------------
    # the two halves of the text tower's work
    # ------------------------------------------------------------------
    def encode_prefix(self,
                      prefix: torch.Tensor,
                      text_rows: Optional[Dict[int, torch.Tensor]] = None,
                      rows_dtype: Optional[torch.dtype] = None) -> KVCache:
        """Run prompt prefixes through the text tower, keeping keys/values.

        Args:
            prefix (Tensor): ``(G, P, W)`` embeddings of positions
                ``0..P-1``, one prefix per group of prompts.
            text_rows (dict[int, Tensor], optional): Rows ``1..n`` of the
                hidden state before block ``i``, ``(n, W)`` or ``(G, n, W)``.
                Defaults to None.
            rows_dtype (torch.dtype, optional): Each group's copy of the
                rows passes through it (:attr:`Prompts.rows_dtype`): the
                value is rounded as by the plain encoder; the gradient is
                rounded once per group, where the plain encoder rounds it
                per prompt (the prefix is not copied per class here).
                Defaults to None.

        Returns:
            list[tuple[Tensor, Tensor]]: Keys and values of every layer,
            each ``(G, heads, P, head_dim)``.
        """
        clip = self.clip
        dtype = clip.dtype
        length = prefix.shape[1]
        x = prefix.to(dtype) + clip.text_positional_embedding[:length].to(
            dtype)
        blocks = clip.text_blocks
        for block in text_rows or ():
            if not isinstance(block, int) or not 0 <= block < len(blocks):
                raise ValueError(
                    f'text rows are given for block {block!r}, but the text '
                    f'tower has blocks 0..{len(blocks) - 1}')
        cache = []
        for i, block in enumerate(blocks):
            if text_rows and i in text_rows:
                x = _write_rows(x, text_rows[i], rows_dtype)
            q, k, v = _qkv(block, x)
            cache.append((k, v))
            if i + 1 < len(blocks):  # the last layer's outputs are unused
                heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = _finish_block(block, x,
                                  heads.transpose(-3, -2).flatten(-2))
        return cache

    def encode_suffix(self, cache: KVCache, suffix: torch.Tensor,
                      lengths: Sequence[int]) -> torch.Tensor:
        """Encode the rest of many prompts against their group's prefix.

        The prompts' remaining positions are packed one after the other, so
        the linear layers (most of the work) run as few large matrix
        products whatever the prompts' lengths; only attention runs per run
        of equal-length prompts. Each prompt ends at its EOT, so no position
        past it is encoded, and the last layer runs at the EOT alone.
        The first layer's projections of the suffix do not depend on the
        group and are computed once for all groups.

        Args:
            cache (list): :meth:`encode_prefix` of the ``G`` groups'
                prefixes of ``P`` positions.
            suffix (Tensor): ``(N, W)`` embeddings of positions ``P`` to the
                EOT of each prompt, the prompts one after the other; the
                same for every group.
            lengths (Sequence[int]): How many positions each prompt has
                (``sum(lengths) == N``). Prompts of equal length should be
                adjacent: each run of them shares one attention call.

        Returns:
            Tensor: Projected features ``(G, len(lengths), embed_dim)``,
            equal to encoding the full prompts.
        """
        clip = self.clip
        blocks = list(clip.text_blocks)
        groups, heads, start, head_dim = cache[0][0].shape
        width = heads * head_dim
        dtype, device = clip.dtype, suffix.device
        runs = []  # [length, number of prompts]
        for length in lengths:
            if runs and runs[-1][0] == length:
                runs[-1][1] += 1
            else:
                runs.append([length, 1])
        position = torch.cat([
            torch.arange(start, start + length, device=device).repeat(count)
            for length, count in runs
        ])
        x = suffix.to(dtype) + clip.text_positional_embedding[position].to(
            dtype)
        # A suffix position sees the whole prefix (no mask needed), itself
        # and the earlier positions of its own prompt.
        masks = {
            length:
            torch.full((length, length),
                       float('-inf'),
                       device=device,
                       dtype=dtype).triu_(1)
            for length, _ in runs
        }
        ends = torch.tensor(lengths, device=device).cumsum(0) - 1
        run_sizes = [length * count for length, count in runs]
        scale = head_dim**-0.5
        for i, (block, (prefix_k, prefix_v)) in enumerate(zip(blocks, cache)):
            last = i + 1 == len(blocks)
            # (N, 3W) in the first layer, where x is shared; (G, N, 3W) after
            qkv = _in_projection(block, x)
            outputs = []
            # split, not slices: its backward is one concatenation
            parts = qkv.split(run_sizes, dim=-2)
            for (length, count), part in zip(runs, parts):
                part = part.unflatten(-1, (3, heads, head_dim)).unflatten(
                    -4, (count, length))  # (..., count, S, 3, heads, hd)
                if part.dim() == 5:
                    part = part.unsqueeze(0)
                # each (G or 1, count, heads, S, head_dim)
                q, k, v = part.movedim(-3, 0).transpose(-3, -2).unbind(0)
                mask = masks[length]
                if last:  # nothing after the last layer reads the others
                    q, mask = q[..., -1:, :], mask[-1:]
                q = q * scale
                scores = torch.cat([
                    torch.einsum('gchsd,ghpd->gchsp',
                                 q.expand(groups, -1, -1, -1, -1), prefix_k),
                    (q @ k.transpose(-1, -2) + mask).expand(
                        groups, -1, -1, -1, -1)
                ],
                                   dim=-1)  # (G, count, heads, S, P + S)
                to_prefix, to_suffix = torch.softmax(
                    scores, dim=-1).split([start, length], dim=-1)
                out = torch.einsum('gchsp,ghpd->gchsd', to_prefix, prefix_v)
                out = out + to_suffix @ v  # (G, count, heads, S, head_dim)
                outputs.append(
                    out.transpose(-3, -2).reshape(groups, -1, width))
            out = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
            if last:
                x = x[..., ends, :]
            x = _finish_block(block, x, out)
        return clip.text_head(x)


def _write_rows(x: torch.Tensor,
                rows: torch.Tensor,
                rows_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``x`` ``(G, P, W)`` with positions ``1..n`` replaced by ``rows``
    (``(n, W)`` or ``(G, n, W)``)."""
    n = rows.shape[-2]
    rows = rows.expand(x.shape[0], -1, -1)
    if rows_dtype is not None:
        rows = rows.to(rows_dtype)
    rows = rows.to(x.dtype)
    return torch.cat([x[:, :1], rows, x[:, 1 + n:]], dim=1)


def _in_projection(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Queries, keys and values of ``x`` ``(..., T, W)``, concatenated
    ``(..., T, 3W)``, with the block's own LayerNorm and projection."""
    attn = block.attn
    return F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)


def _qkv(block: nn.Module, x: torch.Tensor) -> tuple:
    """Per-head queries, keys and values ``(..., heads, T, head_dim)`` of
    ``x`` ``(..., T, W)``."""
    qkv = _in_projection(block, x)
    return tuple(
        t.unflatten(-1, (block.attn.num_heads, -1)).transpose(-3, -2)
        for t in qkv.chunk(3, dim=-1))


def _finish_block(block: nn.Module, x: torch.Tensor,
                  out: torch.Tensor) -> torch.Tensor:
    """Output projection, residuals and MLP of a block, from the attention
    output ``out`` ``(..., T, W)`` (heads merged)."""
    out = F.linear(out, block.attn.out_proj.weight, block.attn.out_proj.bias)
    x = x + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x)))
