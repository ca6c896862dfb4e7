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

    Every image ``x`` has its own ``K`` prompts ``t_i(x)``, whose ``B x K``
    text features the text encoder computes in batched calls (no loop over
    images)::

        prompts = prompt_learner(f)          # ctx + meta_net(f), (B, M, W)
        g       = text_encoder(prompts)      # (B, K, D)
        logits  = logit_scale.exp() * cos(f, g)  # (B, K)

    Args:
        prompt_learner (dict): Config of the prompt learner, e.g.
            ``dict(type='CoCoOpPromptLearner', ctx_init='a photo of a')``.
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        text_encoder (dict): Config of the text encoder. Defaults to
            ``dict(type='PrefixCachedTextEncoder')``, which encodes each
            image's ``[SOT][ctx(x)]`` once for all its K prompts; e.g.
            ``text_chunk_size=2000, grad_checkpointing=True`` bound memory.
        loss (dict): Config of the loss. Defaults to cross-entropy.
        topk (int | tuple[int]): Top-k accuracies when ``cal_acc``.
            Defaults to (1, ).
        cal_acc (bool): Log the training accuracy. Defaults to False.
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

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits ``(B, K)`` from normalised image features ``(B, D)``."""
        image_features = self.pre_logits(feats)
        prompts = self.prompt_learner(image_features)
        text_features = self.text_encoder(prompts)  # (B, K, D)
        return self.cosine_logits(image_features, text_features)
