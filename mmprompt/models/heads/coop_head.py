# Copyright (c) mmprompt contributors. All rights reserved.
"""CoOp's head: one prompt per class, shared by every image."""
from typing import Tuple, Union

import torch
import torch.nn as nn

from mmprompt.registry import MODELS
from .base import BasePromptHead

__all__ = ['CoOpHead']


@MODELS.register_module()
class CoOpHead(BasePromptHead):
    """Context optimisation (`CoOp <https://arxiv.org/abs/2109.01134>`_).

    ``p(y=i|x) = softmax_i(logit_scale.exp() * cos(g(t_i), f))`` with
    ``t_i`` the learned prompt of class ``i`` and ``g`` CLIP's text tower.

    The text features do not depend on the image, so they are computed once
    per forward in training (with gradients) and, in evaluation without
    gradients, once until the class names or the context change: an
    evaluation over many batches encodes the prompts once, not per batch.

    Args:
        prompt_learner (dict): Config of the prompt learner, e.g.
            ``dict(type='CoOpPromptLearner', n_ctx=16)``.
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        text_encoder (dict): Config of the text encoder. Defaults to
            ``dict(type='PrefixCachedTextEncoder')``, which encodes
            ``[SOT][ctx]`` once for all classes when the context is shared
            and the class name comes last.
        loss (dict): Config of the loss. Defaults to cross-entropy.
        topk (int | tuple[int]): Top-k accuracies when ``cal_acc``.
            Defaults to (1, ).
        cal_acc (bool): Log the training accuracy. Defaults to False.
        cache_text_features (bool): In evaluation, keep the text features
            until the class names or the context change. False recomputes
            them for every batch, as the original does (the baseline of
            ``tools/analysis_tools/benchmark.py``). Defaults to True.
        init_cfg (dict, optional): Unused. Defaults to None.
        **kwargs: The arguments of :class:`BasePromptHead`.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmprompt.models import CoOpHead, OpenCLIP
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> head = CoOpHead(dict(type='CoOpPromptLearner', n_ctx=4), clip)
        >>> head.set_class_names(['cat', 'dog', 'bird'])
        >>> feats = F.normalize(torch.randn(2, 64), dim=-1)
        >>> head((feats, )).shape
        torch.Size([2, 3])
    """

    # Text features of the last evaluation, and what they were computed
    # from (class names and parameter versions).
    _cache_key = None
    _cached_features = None

    def __init__(self,
                 prompt_learner: dict,
                 clip: Union[nn.Module, dict, None] = None,
                 cache_text_features: bool = True,
                 **kwargs) -> None:
        super().__init__(prompt_learner, clip, **kwargs)
        self.cache_text_features = cache_text_features

    def _state_key(self) -> tuple:
        params = tuple((p.data_ptr(), p._version, p.dtype, p.device)
                       for p in self.prompt_learner.parameters())
        return (self.prompt_learner.names_version, params)

    def text_features(self) -> torch.Tensor:
        """Text features of every class's prompt, ``(K, D)``."""
        if (torch.is_grad_enabled() or self.training
                or not self.cache_text_features):
            self._cached_features = None
            return self.text_encoder(self.prompt_learner())[0]
        key = self._state_key()
        if self._cached_features is None or key != self._cache_key:
            self._cached_features = self.text_encoder(self.prompt_learner())[0]
            self._cache_key = key
        return self._cached_features

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits ``(B, K)`` from normalised image features ``(B, D)``."""
        image_features = self.pre_logits(feats)
        return self.cosine_logits(image_features, self.text_features())
