# Copyright (c) mmprompt contributors. All rights reserved.
"""What a prompt learner hands to a text encoder: :class:`Prompts`."""
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch

__all__ = ['ClassTokens', 'Prompts', 'LAYOUTS']

#: Where the class name goes relative to the context (CoOp's
#: ``CLASS_TOKEN_POSITION``).
LAYOUTS = ('end', 'middle', 'front')


@dataclass(frozen=True)
class ClassTokens:
    """The frozen token embeddings of every class's prompt.

    Each class ``i`` has the tokenized prompt ``[SOT] w_1 .. w_M name_i .
    [EOT] [pad ..]``, where ``w_1 .. w_M`` are ``M`` placeholder (or
    initialisation) words whose positions the context replaces.

    Args:
        embeddings (Tensor): ``(K, L, W)`` token embeddings of the prompts.
        eot (Tensor): ``(K,)`` the position each prompt is pooled at.
        n_ctx (int): ``M``, the number of context positions after SOT.
        name_lengths (tuple[int]): The number of tokens of each class name.
        version (int): Changes whenever the class names change, for caches.
    """

    embeddings: torch.Tensor
    eot: torch.Tensor
    n_ctx: int
    name_lengths: Tuple[int, ...]
    version: int = 0

    @property
    def num_classes(self) -> int:
        return self.embeddings.shape[0]

    @property
    def sot(self) -> torch.Tensor:
        """``(1, W)``: the SOT token, the same in every prompt."""
        return self.embeddings[0, :1]

    @property
    def suffix(self) -> torch.Tensor:
        """``(K, L - 1 - M, W)``: the tokens after the context (the class
        name, ``.``, EOT and padding)."""
        return self.embeddings[:, 1 + self.n_ctx:]


@dataclass
class Prompts:
    """The prompts of ``K`` classes for ``G`` groups of images.

    A small value that a prompt learner's ``forward`` returns and a text
    encoder consumes. The learned part is the context: ``context[g, c]``
    replaces the ``M`` context positions of the prompts of group ``g`` and
    class ``c``, where a dimension of size 1 is shared (broadcast)::

        (1, 1, M, W)  one context for every image and class (CoOp)
        (1, K, M, W)  one context per class (CoOp's class-specific context)
        (B, 1, M, W)  one context per image (CoCoOp: ctx + meta_net(f))

    ``layout`` places the class name (``class_tokens``) relative to the
    context, as CoOp's class-token position::

        end:    [SOT][V]1..[V]M [name][.][EOT]
        middle: [SOT][V]1..[V]M/2 [name] [V]M/2+1..[V]M [.][EOT]
        front:  [SOT][name] [V]1..[V]M [.][EOT]

    Per-layer tokens, for deep prompt methods: ``text_rows[i]`` replaces the
    hidden state at positions ``1 .. n`` (right after SOT, before every
    class token in the 'end' layout) before text block ``i``, ``(n, W)`` for
    all prompts or ``(G, n, W)`` per group. ``vision_tokens`` (``(n, Wv)``
    or ``(B, n, Wv)``) are appended to the image sequence and
    ``vision_rows[i]`` replaces them before vision block ``i`` (see
    :meth:`OpenCLIP.encode_image`).

    Args:
        context (Tensor): ``(G, C, M, W)`` with ``C`` 1 or ``K``.
        class_tokens (ClassTokens): The frozen class-name tokens.
        layout (str): ``'end'``, ``'middle'`` or ``'front'``.
            Defaults to 'end'.
        text_rows (dict[int, Tensor]): Deep text tokens. Defaults to {}.
        vision_tokens (Tensor, optional): Appended vision tokens.
            Defaults to None.
        vision_rows (dict[int, Tensor]): Deep vision tokens.
            Defaults to {}.
        rows_dtype (torch.dtype, optional): Every injected copy of the deep
            text rows, the vision tokens and the vision rows passes through
            this dtype after being expanded to the prompts or images (the
            deep-prompt originals' ``p.expand(...).half()``, which rounds
            the value and each copy's gradient even in their fp32 path);
            the context (layer 0 of the text tower) is not rounded. None
            injects them as they are. Defaults to None.
    """

    context: torch.Tensor
    class_tokens: ClassTokens
    layout: str = 'end'
    text_rows: Dict[int, torch.Tensor] = field(default_factory=dict)
    vision_tokens: Optional[torch.Tensor] = None
    vision_rows: Dict[int, torch.Tensor] = field(default_factory=dict)
    rows_dtype: Optional[torch.dtype] = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f'layout must be one of {LAYOUTS}, got '
                             f'{self.layout!r}')
        if self.context.dim() != 4:
            raise ValueError('context must be (groups, 1 or classes, n_ctx, '
                             f'width), got shape {tuple(self.context.shape)}')
        classes = self.context.shape[1]
        if classes not in (1, self.num_classes):
            raise ValueError(f'context has {classes} per-class contexts for '
                             f'{self.num_classes} classes; expected 1 or '
                             f'{self.num_classes}')
        if self.context.shape[2] != self.class_tokens.n_ctx:
            raise ValueError(
                f'context has {self.context.shape[2]} vectors but the class '
                f'tokens leave {self.class_tokens.n_ctx} context positions')

    @property
    def groups(self) -> int:
        """``G``: 1 when all images share the prompts."""
        return self.context.shape[0]

    @property
    def num_classes(self) -> int:
        return self.class_tokens.num_classes

    @property
    def shared_prefix(self) -> int:
        """How many leading positions the ``K`` prompts of a group share:
        ``1 + M`` (SOT and the context) when one context serves all classes
        and the class name comes last, else 0."""
        if self.layout != 'end' or self.context.shape[1] != 1:
            return 0
        return 1 + self.class_tokens.n_ctx

    def embeddings(self,
                   classes: slice = slice(None),
                   length: Optional[int] = None) -> torch.Tensor:
        """The prompts as token embeddings, ``(G, k, length, W)``.

        Args:
            classes (slice): Which classes. Defaults to all.
            length (int, optional): Keep the first ``length`` positions
                (e.g. up to the last EOT). Defaults to all.

        Returns:
            Tensor: ``(G, k, length, W)``.
        """
        tokens = self.class_tokens
        m = tokens.n_ctx
        full = tokens.embeddings.shape[1]
        length = full if length is None else min(length, full)
        built = length
        if self.layout != 'end':
            # the positions a layout moves the name and context to come
            # from the first 1 + M + name positions of the 'end' layout
            built = max(length, 1 + m + max(tokens.name_lengths[classes]))
        suffix = tokens.suffix[classes, :max(built - 1 - m, 0)]
        k, width = suffix.shape[0], suffix.shape[-1]
        context = self.context
        if context.shape[1] != 1:
            context = context[:, classes]
        groups = context.shape[0]
        context = context.expand(groups, k, -1, -1).to(suffix.dtype)
        sot = tokens.sot.expand(groups, k, 1, width)
        suffix = suffix.expand(groups, -1, -1, -1)
        prompts = torch.cat([sot, context, suffix], dim=2)[:, :, :built]
        if self.layout == 'end':
            return prompts  # (G, k, length, W)
        index = self._layout_index(classes, length)  # (k, length)
        index = index.to(prompts.device)[None, :, :, None]
        return prompts.gather(2, index.expand(*prompts.shape[:2], -1, width))

    def _layout_index(self, classes: slice, length: int) -> torch.Tensor:
        """For each class and output position, the position of the 'end'
        layout it takes its embedding from (a permutation per class)."""
        tokens = self.class_tokens
        m = tokens.n_ctx
        names = torch.tensor(tokens.name_lengths[classes])[:, None]  # (k, 1)
        half = m // 2 if self.layout == 'middle' else 0
        j = torch.arange(length)[None, :]  # (1, length)
        # [SOT][ctx[:half]][name][ctx[half:]][rest], in 'end' positions
        return torch.where(
            j <= half, j,
            torch.where(j <= half + names, j - half + m,
                        torch.where(j <= m + names, j - names, j)))
