# Copyright (c) mmprompt contributors. All rights reserved.
"""Zero-shot CLIP with hand-written prompts, optionally ensembled."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmprompt.registry import MODELS
from .base import CLIPHead
from .text_bank import TextFeatureBank

__all__ = ['ZeroShotHead']


@MODELS.register_module()
class ZeroShotHead(CLIPHead):
    """Zero-shot CLIP (`CLIP <https://arxiv.org/abs/2103.00020>`_).

    The text feature of a class is that of ``template.format(name)``; with
    several templates, the mean of their L2-normalised features,
    renormalised (prompt ensembling). Computed once per set of class names.

    Args:
        templates (str | Sequence[str]): See
            :func:`~mmprompt.models.heads.templates.resolve_templates`: a
            template, a dataset name (CoOp's per-dataset template),
            ``'imagenet-7'``, ``'imagenet-80'``, ``'imagenet-7+EuroSAT'``, or
            a list. Defaults to 'a photo of a {}.'.
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        loss (dict): Config of the loss (for ``mode='loss'`` only).
            Defaults to cross-entropy.
        topk (int | tuple[int]): Top-k accuracies when ``cal_acc``.
            Defaults to (1, ).
        cal_acc (bool): Unused in evaluation. Defaults to False.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmprompt.models import OpenCLIP, ZeroShotHead
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> head = ZeroShotHead('imagenet-7', clip)
        >>> head.set_class_names(['cat', 'dog'])
        >>> feats = F.normalize(torch.randn(3, 64), dim=-1)
        >>> head((feats, )).shape
        torch.Size([3, 2])
    """

    def __init__(self,
                 templates: Union[str, Sequence[str]] = 'a photo of a {}.',
                 clip: Union[nn.Module, dict, None] = None,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            clip=clip,
            loss=loss,
            topk=topk,
            cal_acc=cal_acc,
            init_cfg=init_cfg)
        self.bank = TextFeatureBank(self.clip, templates)
        self._class_names: list = []

    @property
    def class_names(self) -> list:
        return self._class_names

    @property
    def templates(self) -> list:
        return self.bank.templates

    def set_class_names(self, class_names: Sequence[str]) -> None:
        names = list(class_names)
        if not names:
            raise ValueError('class_names is empty: give at least one class')
        self._class_names = names

    def text_features(self) -> torch.Tensor:
        """Text features of every class, ``(K, D)``, normalised."""
        if not self._class_names:
            raise RuntimeError(
                'no class names are set: call set_class_names(names) (the '
                "runner does it from the dataset's metainfo['classes'] "
                'through ClassNamesHook)')
        return self.bank(self._class_names)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits ``(B, K)`` from normalised image features ``(B, D)``."""
        return self.cosine_logits(self.pre_logits(feats), self.text_features())
