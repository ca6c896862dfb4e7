# Copyright (c) mmprompt contributors. All rights reserved.
"""CoOp's prompt learner."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmprompt.registry import MODELS
from .base import BasePromptLearner

__all__ = ['CoOpPromptLearner']

_POSITIONS = ('end', 'middle', 'front')


@MODELS.register_module()
class CoOpPromptLearner(BasePromptLearner):
    """Context optimisation (`CoOp <https://arxiv.org/abs/2109.01134>`_).

    Builds the prompt of every class from ``M`` learned context vectors,
    shared by all classes or one set per class (``csc``), with the class
    name after (``'end'``), inside (``'middle'``) or before (``'front'``)
    the context, exactly as the original::

        end:    [SOT][V]1..[V]M [name][.][EOT]
        middle: [SOT][V]1..[V]M/2 [name] [V]M/2+1..[V]M [.][EOT]
        front:  [SOT][name] [V]1..[V]M [.][EOT]

    The EOT stays at the same index in all three, so the tokenized prompt
    still locates it.

    Args:
        clip (OpenCLIP): The frozen CLIP.
        n_ctx (int): Number of context vectors for random init.
            Defaults to 16.
        ctx_init (str): Initialisation words (they set ``M``); ``''`` for
            ``N(0, 0.02)``. Defaults to ''.
        csc (bool): Class-specific contexts. Defaults to False.
        num_classes (int, optional): Needed with ``csc=True``.
            Defaults to None.
        class_token_position (str): ``'end'``, ``'middle'`` or ``'front'``.
            Defaults to 'end'.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> from mmprompt.models import CoOpPromptLearner, OpenCLIP
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> learner = CoOpPromptLearner(clip, ctx_init='a photo of a')
        >>> learner.set_class_names(['cat', 'sea_lion'])
        >>> prompts, tokens = learner()
        >>> prompts.shape, tokens.shape  # (K, L, W), (K, L)
        (torch.Size([2, 77, 64]), torch.Size([2, 77]))
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: int = 16,
                 ctx_init: str = '',
                 csc: bool = False,
                 num_classes: Optional[int] = None,
                 class_token_position: str = 'end',
                 init_cfg: Optional[dict] = None) -> None:
        if class_token_position not in _POSITIONS:
            raise ValueError('class_token_position must be one of '
                             f"{', '.join(repr(p) for p in _POSITIONS)}, got "
                             f'{class_token_position!r}')
        super().__init__(
            clip,
            n_ctx=n_ctx,
            ctx_init=ctx_init,
            csc=csc,
            num_classes=num_classes,
            init_cfg=init_cfg)
        self.class_token_position = class_token_position
        self.register_buffer('layout_index', None, persistent=False)

    def set_class_names(self, class_names: Sequence[str]) -> None:
        super().set_class_names(class_names)
        if self.class_token_position == 'end':
            self.layout_index = None
            return
        # Each prompt is a permutation of the 'end' layout's positions:
        # 0 = SOT, 1..M = context, M+1.. = name tokens, '.', EOT, padding.
        m, length = self.n_ctx, self.tokenized_prompts.shape[1]
        half = m // 2
        rows = []
        for n in self.name_lens:
            ctx = list(range(1, m + 1))
            name = list(range(m + 1, m + 1 + n))
            rest = list(range(m + 1 + n, length))
            if self.class_token_position == 'middle':
                rows.append([0] + ctx[:half] + name + ctx[half:] + rest)
            else:
                rows.append([0] + name + ctx + rest)
        self.layout_index = torch.tensor(
            rows, dtype=torch.long, device=self.tokenized_prompts.device)

    def forward(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The prompts of all classes.

        Returns:
            tuple[Tensor, Tensor]: Prompt embeddings ``(K, L, W)`` and their
            token ids ``(K, L)`` (for the EOT positions).
        """
        self._check_ready()
        prefix, suffix = self.token_prefix, self.token_suffix
        num_classes = prefix.shape[0]
        ctx = self.ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(num_classes, -1, -1)  # (K, M, W)
        prompts = torch.cat([prefix, ctx, suffix], dim=1)  # (K, L, W)
        if self.layout_index is not None:
            index = self.layout_index.unsqueeze(-1).expand_as(prompts)
            prompts = torch.gather(prompts, 1, index)
        return prompts, self.tokenized_prompts
