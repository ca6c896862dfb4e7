# Copyright (c) mmprompt contributors. All rights reserved.
"""CoCoOp's prompt learner."""
from collections import OrderedDict
from typing import Optional

import torch
import torch.nn as nn

from mmprompt.registry import MODELS
from .base import BasePromptLearner
from .prompts import Prompts

__all__ = ['CoCoOpPromptLearner']


@MODELS.register_module()
class CoCoOpPromptLearner(BasePromptLearner):
    """Conditional prompt learning (`CoCoOp
    <https://arxiv.org/abs/2203.05557>`_).

    A Meta-Net maps each image's L2-normalised feature ``f`` to one token
    ``pi(x)`` that is added to every context vector, so each image gets its
    own prompts ``t_i(x) = [v_1 + pi(x)] .. [v_M + pi(x)] [CLASS_i]``::

        meta_net = Linear(D, D // 16) -> ReLU -> Linear(D // 16, W)

    with ``D`` CLIP's embedding size and ``W`` the text width. The class name
    is always at the end, as in the original.

    Args:
        clip (OpenCLIP): The frozen CLIP.
        n_ctx (int, optional): Number of context vectors for random init;
            None means 16. Defaults to None.
        ctx_init (str): Initialisation words (they set ``M``; an
            ``n_ctx`` that disagrees is ignored with a warning).
            Defaults to ''.
        bottleneck_ratio (int): ``D // hidden`` of the Meta-Net.
            Defaults to 16.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.models import CoCoOpPromptLearner, OpenCLIP
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> learner = CoCoOpPromptLearner(clip, ctx_init='a photo of a')
        >>> learner.set_class_names(['cat', 'dog', 'sea_lion'])
        >>> prompts = learner(torch.randn(2, 64))
        >>> prompts.context.shape  # (B images, 1 context for all, M, W)
        torch.Size([2, 1, 4, 64])
        >>> prompts.embeddings().shape  # (B, K, L, W)
        torch.Size([2, 3, 77, 64])
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: Optional[int] = None,
                 ctx_init: str = '',
                 bottleneck_ratio: int = 16,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            clip, n_ctx=n_ctx, ctx_init=ctx_init, init_cfg=init_cfg)
        vis_dim, hidden = clip.embed_dim, clip.embed_dim // bottleneck_ratio
        if hidden < 1:
            raise ValueError(
                f'bottleneck_ratio={bottleneck_ratio} leaves no hidden unit '
                f'for a {vis_dim}-d image feature')
        self.meta_net = nn.Sequential(
            OrderedDict([
                ('linear1', nn.Linear(vis_dim, hidden)),
                ('relu', nn.ReLU(inplace=True)),
                ('linear2', nn.Linear(hidden, clip.width)),
            ])).to(device=clip.device)
        if clip.dtype == torch.float16:
            # As the original in its default fp16 mode.
            self.meta_net.half()

    def init_weights(self) -> None:
        """Keep PyTorch's default Linear init, as the original."""

    def forward(self, image_features: torch.Tensor) -> Prompts:
        """The prompts of every class for every image.

        Args:
            image_features (Tensor): L2-normalised image features ``(B, D)``.

        Returns:
            Prompts: context ``(B, 1, M, W)``, class name at the end.
        """
        dtype = self.meta_net.linear1.weight.dtype
        shift = self.meta_net(image_features.to(dtype))  # pi(x): (B, W)
        context = self.ctx + shift[:, None]  # v_m + pi(x): (B, M, W)
        return Prompts(context[:, None], self.class_tokens())
