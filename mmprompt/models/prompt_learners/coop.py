# Copyright (c) mmprompt contributors. All rights reserved.
"""CoOp's prompt learner."""
from typing import Optional

import torch.nn as nn

from mmprompt.registry import MODELS
from .base import BasePromptLearner
from .prompts import LAYOUTS, Prompts

__all__ = ['CoOpPromptLearner']


@MODELS.register_module()
class CoOpPromptLearner(BasePromptLearner):
    """Context optimisation (`CoOp <https://arxiv.org/abs/2109.01134>`_).

    The prompt of class ``i`` is ``t_i = [V]_1 .. [V]_M [CLASS_i]``: ``M``
    learned context vectors, shared by all classes or one set per class
    (``csc``), with the class name after (``'end'``), inside (``'middle'``)
    or before (``'front'``) the context, exactly as the original::

        end:    [SOT][V]1..[V]M [name][.][EOT]
        middle: [SOT][V]1..[V]M/2 [name] [V]M/2+1..[V]M [.][EOT]
        front:  [SOT][name] [V]1..[V]M [.][EOT]

    Args:
        clip (OpenCLIP): The frozen CLIP.
        n_ctx (int, optional): Number of context vectors for random init;
            None means 16. Defaults to None.
        ctx_init (str): Initialisation words (they set ``M``; an
            ``n_ctx`` that disagrees is ignored with a warning); ``''`` for
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
        >>> prompts = learner()
        >>> prompts.context.shape  # (1 group, 1 context for all, M, W)
        torch.Size([1, 1, 4, 64])
        >>> prompts.embeddings().shape  # (G, K, L, W)
        torch.Size([1, 2, 77, 64])
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: Optional[int] = None,
                 ctx_init: str = '',
                 csc: bool = False,
                 num_classes: Optional[int] = None,
                 class_token_position: str = 'end',
                 init_cfg: Optional[dict] = None) -> None:
        if class_token_position not in LAYOUTS:
            raise ValueError('class_token_position must be one of '
                             f"{', '.join(repr(p) for p in LAYOUTS)}, got "
                             f'{class_token_position!r}')
        super().__init__(
            clip,
            n_ctx=n_ctx,
            ctx_init=ctx_init,
            csc=csc,
            num_classes=num_classes,
            init_cfg=init_cfg)
        self.class_token_position = class_token_position

    def forward(self) -> Prompts:
        """The prompts of all classes, the same for every image.

        Returns:
            Prompts: context ``(1, 1, M, W)``, or ``(1, K, M, W)`` with
            class-specific contexts, in the learner's layout.
        """
        ctx = self.ctx  # (M, W), or (K, M, W) with csc
        context = ctx[None] if self.csc else ctx[None, None]
        return Prompts(
            context, self.class_tokens(), layout=self.class_token_position)
