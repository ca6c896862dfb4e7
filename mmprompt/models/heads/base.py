# Copyright (c) mmprompt contributors. All rights reserved.
"""Shared parts of the prompt heads: the frozen CLIP and cosine logits."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead

from mmprompt.registry import MODELS

__all__ = ['BasePromptHead']


class BasePromptHead(ClsHead):
    """A classification head whose weights are text features of prompts.

    ``logits = logit_scale.exp() * cos(f, g_i)`` for the L2-normalised image
    feature ``f`` and the text feature ``g_i`` of class ``i``'s prompt,
    computed in fp32 whatever the CLIP's precision.

    Args:
        clip (OpenCLIP | dict): The frozen CLIP, shared with the classifier
            (which passes it), or its config.
        loss (dict): Config of the loss. Defaults to
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        topk (int | tuple[int]): Top-k accuracies when ``cal_acc``.
            Defaults to (1, ).
        cal_acc (bool): Log the training accuracy. Defaults to False.
        init_cfg (dict, optional): Unused. Defaults to None.
    """

    def __init__(self,
                 clip: Union[nn.Module, dict, None] = None,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        if isinstance(clip, dict):
            clip = MODELS.build(clip)
        if clip is None:
            raise ValueError(
                f'{type(self).__name__} needs the frozen CLIP: build it '
                'inside a PromptClassifier, or pass clip=OpenCLIP(...)')
        # Shared with the classifier; not registered here.
        object.__setattr__(self, 'clip', clip)

    @property
    def class_names(self) -> list:
        raise NotImplementedError

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Set the classes the head scores, in label order."""
        raise NotImplementedError

    def cosine_logits(self, image_features: torch.Tensor,
                      text_features: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarity in fp32.

        Args:
            image_features (Tensor): Normalised ``(B, D)``.
            text_features (Tensor): ``(K, D)`` shared by all images, or
                ``(B, K, D)`` one set per image; normalised here.

        Returns:
            Tensor: ``(B, K)``.
        """
        scale = self.clip.logit_scale.float().exp()
        f = image_features.float()
        g = F.normalize(text_features.float(), dim=-1)
        if g.dim() == 2:
            return scale * f @ g.t()
        return scale * torch.einsum('bd,bkd->bk', f, g)
