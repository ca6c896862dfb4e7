# Copyright (c) mmprompt contributors. All rights reserved.
"""KgCoOp's head: CoOp's, plus a pull of the learned prompts' text features
toward those of CLIP's hand-written prompt."""
from typing import Dict, List, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.registry import MODELS
from .coop_head import CoOpHead
from .text_bank import TextFeatureBank

__all__ = ['KgCoOpHead']


@MODELS.register_module()
class KgCoOpHead(CoOpHead):
    """Knowledge-guided context optimisation
    (`KgCoOp <https://arxiv.org/abs/2303.13283>`_).

    CoOp's prompts and logits, trained with

    .. math::

        L = CE(logits, y) + w \\cdot \\Bigl(1 - \\frac{1}{K}\\sum_i
            \\cos\\bigl(g(t_i), w^{clip}_i\\bigr)\\Bigr)

    where ``g(t_i)`` is the text feature of class ``i``'s learned prompt and
    ``w^clip_i`` that of the hand-written prompt ``template.format(name_i)``
    (for unit vectors ``1 - cos = ||a - b||² / 2``: half the squared
    distance). The hand-written features come from a
    :class:`TextFeatureBank` over the same frozen CLIP, computed once per
    set of training classes, without gradients. Evaluation is CoOp's: the
    term only shapes training.

    The original (htyao89/KgCoOp) is reproduced to 1e-5 by the defaults
    with the learner ``CoOpPromptLearner(n_ctx=4, ctx_init='a photo of a')``
    (``configs/_base_/models/kgcoop.py``); unlike the original, the
    learner's ``ctx_init`` and ``class_token_position`` are honoured
    (``configs/kgcoop/README.md``).

    Args:
        prompt_learner (dict): Config of the prompt learner, e.g.
            ``dict(type='CoOpPromptLearner', n_ctx=4,
            ctx_init='a photo of a')``.
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        templates (str | Sequence[str]): The hand-written prompt: a
            template with ``'{}'``, a dataset name of the ``template_table``
            (e.g. ``'DescribableTextures'``), a template set, or a list
            (their features are averaged as ``aggregation`` says).
            Defaults to 'a photo of a {}.'.
        template_table (str): The per-dataset table dataset names are read
            in. Defaults to 'kgcoop' (the original's ``CUSTOM_TEMPLATES``:
            CoOp's, with 'a photo of a {}, a type of texture.' for DTD).
        kg_weight (float): ``w``, the original's ``TRAINER.COOP.W``.
            Defaults to 8.0 (every script of the original; its config
            default is 1.0).
        aggregation (str): How several templates make one feature per
            class (:data:`~mmprompt.models.heads.AGGREGATIONS`).
            Defaults to 'normalize_mean'.
        **kwargs: The arguments of :class:`CoOpHead` (``text_encoder``,
            ``loss``, ``cache_text_features``, ...).

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmpretrain.structures import DataSample
        >>> from mmprompt.models import KgCoOpHead, OpenCLIP
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> head = KgCoOpHead(
        ...     dict(type='CoOpPromptLearner', ctx_init='a photo of a'),
        ...     clip, templates='EuroSAT')
        >>> head.set_class_names(['forest', 'river', 'sea_or_lake'])
        >>> feats = F.normalize(torch.randn(2, 64), dim=-1)
        >>> samples = [DataSample().set_gt_label(i) for i in (0, 2)]
        >>> sorted(head.loss((feats, ), samples))
        ['loss', 'loss_kg']
        >>> head.bank.prompts(['sea_or_lake'])
        [['a centered satellite photo of sea or lake.']]
    """

    def __init__(self,
                 prompt_learner: dict,
                 clip: Union[nn.Module, dict, None] = None,
                 templates: Union[str, Sequence[str]] = 'a photo of a {}.',
                 template_table: str = 'kgcoop',
                 kg_weight: float = 8.0,
                 aggregation: str = 'normalize_mean',
                 **kwargs) -> None:
        number = isinstance(kg_weight,
                            (int, float)) and not isinstance(kg_weight, bool)
        if not number or not kg_weight >= 0:
            raise ValueError('kg_weight must be a number >= 0 (the weight '
                             f'of the KgCoOp term), got {kg_weight!r}')
        super().__init__(prompt_learner, clip, **kwargs)
        self.kg_weight = float(kg_weight)
        self.bank = TextFeatureBank(
            self.clip, templates, aggregation, table=template_table)

    @property
    def templates(self) -> List[str]:
        """The hand-written templates of the teacher features."""
        return self.bank.templates

    def clip_text_features(self) -> torch.Tensor:
        """``w^clip``: the hand-written prompts' features of the current
        classes, ``(K, D)``, normalised, fp32, without gradient."""
        return self.bank(self.class_names)

    def kg_score(self, text_features: torch.Tensor) -> torch.Tensor:
        """``1 - mean_i cos(g_i, w^clip_i)``, the unweighted KgCoOp term.

        Args:
            text_features (Tensor): The learned prompts' features ``g``,
                ``(K, D)``, in the current classes' order.

        Returns:
            Tensor: A scalar, fp32.
        """
        with torch.autocast(text_features.device.type, enabled=False):
            g = F.normalize(text_features.float(), dim=-1)
            w_clip = self.clip_text_features().to(g.device)
            return 1 - (g * w_clip).sum(-1).mean()

    def loss(self, feats: Tuple[torch.Tensor], data_samples: list,
             **kwargs) -> Dict[str, torch.Tensor]:
        """Cross-entropy of the logits (``loss``) and the weighted KgCoOp
        term (``loss_kg``); the runner sums both.

        Args:
            feats (tuple[Tensor]): Normalised image features ``(B, D)``.
            data_samples (list[DataSample]): With ``gt_label``.

        Returns:
            dict[str, Tensor]: ``loss`` and ``loss_kg``.
        """
        image_features = self.pre_logits(feats)
        text_features = self.text_features()  # (K, D), with gradients
        logits = self.cosine_logits(image_features, text_features)
        losses = self._get_loss(logits, data_samples, **kwargs)
        losses['loss_kg'] = self.kg_weight * self.kg_score(text_features)
        return losses
