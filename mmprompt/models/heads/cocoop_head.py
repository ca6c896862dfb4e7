# Copyright (c) mmprompt contributors. All rights reserved.
"""CoCoOp's head: prompts conditioned on each image."""
from typing import Tuple

import torch

from mmprompt.registry import MODELS
from .base import BasePromptHead

__all__ = ['CoCoOpHead']


@MODELS.register_module()
class CoCoOpHead(BasePromptHead):
    """Conditional prompt learning (`CoCoOp
    <https://arxiv.org/abs/2203.05557>`_).

    For each image ``x`` the Meta-Net shifts the context by ``pi(f(x))``,
    so every image has its own K prompts; their B x K text features are
    encoded in batched calls of the text tower (no loop over images), the
    shared ``[SOT][ctx(x)]`` positions once per image::

        ctx(x)  = ctx + meta_net(f)                     # (B, M, W)
        prompts = [SOT] ctx(x) [name_i][.][EOT]         # (B, K, L, W)
        logits  = logit_scale.exp() * cos(f, g(prompts))  # (B, K)

    Args:
        prompt_learner (dict): Config of the prompt learner, e.g.
            ``dict(type='CoCoOpPromptLearner', ctx_init='a photo of a')``.
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        loss (dict): Config of the loss. Defaults to cross-entropy.
        topk (int | tuple[int]): Top-k accuracies when ``cal_acc``.
            Defaults to (1, ).
        cal_acc (bool): Log the training accuracy. Defaults to False.
        prefix_cache (bool): Encode each image's ``[SOT][ctx(x)]`` once for
            all its K prompts. Defaults to True.
        text_chunk_size (int, optional): At most this many prompts per text
            tower call, e.g. 2000 to bound memory. Defaults to None (all).
        grad_checkpointing (bool): Recompute text activations in backward,
            so training memory stays flat in B x K. Defaults to False.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmprompt.models import CoCoOpHead, OpenCLIP
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> head = CoCoOpHead(
        ...     dict(type='CoCoOpPromptLearner', ctx_init='a photo of a'),
        ...     clip)
        >>> head.set_class_names(['cat', 'dog', 'bird'])
        >>> feats = F.normalize(torch.randn(2, 64), dim=-1)
        >>> head((feats, )).shape
        torch.Size([2, 3])
    """

    def text_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """Text features of every image's prompts, ``(B, K, D)``."""
        ctx = self.prompt_learner.context(image_features)  # (B, M, W)
        return self.encode_end_prompts(self.prompt_learner, ctx)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits ``(B, K)`` from normalised image features ``(B, D)``."""
        image_features = self.pre_logits(feats)
        return self.cosine_logits(image_features,
                                  self.text_features(image_features))
