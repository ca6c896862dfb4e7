# Copyright (c) mmprompt contributors. All rights reserved.
"""PromptSRC's head: IVLP prompts kept close to the frozen CLIP by three
self-regularising terms."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.registry import MODELS
from .deep_prompt_head import DeepPromptHead
from .text_bank import TextFeatureBank

__all__ = ['PromptSRCHead']

#: The original's learner: IVLP, 4 + 4 tokens, depth 9 in both towers, the
#: text context from 'a photo of a' (vit_b16_c2_ep20_batch4_4+4ctx.yaml).
PROMPTSRC_LEARNER = dict(
    type='IVLPPromptLearner',
    n_ctx=4,
    ctx_init='a photo of a',
    text_depth=9,
    n_vision_ctx=4,
    vision_depth=9)


def _weight(value, name: str) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not value >= 0:
        raise ValueError(f'{name} must be a number >= 0, got {value!r}')
    return float(value)


@MODELS.register_module()
class PromptSRCHead(DeepPromptHead):
    """Self-regulating prompts (`PromptSRC
    <https://arxiv.org/abs/2307.06948>`_): IVLP's prompts, regularised
    towards the frozen CLIP.

    The logits are IVLP's (:class:`DeepPromptHead`). In training, the same
    frozen CLIP (no second copy) also gives the teacher: the image features
    of the unprompted tower ``f_zs`` and the text features ``w_zs`` of 60
    hand-written templates per class (the mean of the raw features,
    normalised after, in fp32: a :class:`TextFeatureBank`). With ``z`` the
    logits of the prompted features ``f``, ``g`` and ``y`` the labels::

        z_zs  = logit_scale.exp() * f_zs @ fp16(w_zs).T
        loss  = CE(z, y)                                        # 'loss'
        loss_scl_text   = λ_text  * mean |g - w_zs|   over K x D classes
        loss_scl_image  = λ_image * mean |f - f_zs|   over B x D
        loss_scl_logits = sum_{b,c} p_zs (log p_zs - log p) / (B * K)

    as the original computes them (``F.l1_loss``, ``F.kl_div`` of two
    ``log_softmax`` with ``log_target=True``, T = 1, divided by ``B·K``,
    not ``batchmean``; the teacher's text features rounded through fp16 in
    the zero-shot logits only, as its ``fixed_embeddings.half()``). The
    runner sums the four terms. The prompts of the epochs are aggregated by
    :class:`~mmprompt.engine.GaussianPromptAggregationHook` (the configs'
    ``custom_hooks``).

    ``f_zs`` is computed by :meth:`extract_image_features` in training mode
    (the unprompted pass of the same tower, without a graph) and used by
    the next :meth:`loss`.

    Args:
        prompt_learner (dict): Config of the learner. Defaults to the
            original's IVLP (4 + 4 tokens, depth 9 in both towers, 'a photo
            of a').
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        text_loss_weight (float): ``λ_text`` (``TEXT_LOSS_WEIGHT``).
            Defaults to 25.
        image_loss_weight (float): ``λ_image`` (``IMAGE_LOSS_WEIGHT``).
            Defaults to 10.
        templates (str | Sequence[str]): The teacher's templates
            (:func:`~mmprompt.models.heads.resolve_templates`). Defaults to
            'imagenet-60', the original's 60.
        teacher_fp16_rounding (bool): Round the teacher's text features to
            fp16 in the zero-shot logits, as the original does in every
            precision. Defaults to True.
        **kwargs: The arguments of :class:`DeepPromptHead` (``text_encoder``,
            ``loss``, ``cache_text_features``, ...).

    Examples:
        >>> import torch
        >>> from mmpretrain.structures import DataSample
        >>> from mmprompt.models import OpenCLIP
        >>> from mmprompt.models.heads import PromptSRCHead
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> head = PromptSRCHead(dict(
        ...     type='IVLPPromptLearner', n_ctx=4, text_depth=2,
        ...     n_vision_ctx=4, vision_depth=2), clip)
        >>> head.set_class_names(['cat', 'dog', 'bird'])
        >>> feats = head.extract_image_features(torch.rand(2, 3, 32, 32))
        >>> samples = [DataSample().set_gt_label(i) for i in (0, 2)]
        >>> sorted(head.loss((feats, ), samples))
        ['loss', 'loss_scl_image', 'loss_scl_logits', 'loss_scl_text']
    """

    def __init__(self,
                 prompt_learner: dict = PROMPTSRC_LEARNER,
                 clip: Union[nn.Module, dict, None] = None,
                 text_loss_weight: float = 25.,
                 image_loss_weight: float = 10.,
                 templates: Union[str, Sequence[str]] = 'imagenet-60',
                 teacher_fp16_rounding: bool = True,
                 **kwargs) -> None:
        text_loss_weight = _weight(text_loss_weight, 'text_loss_weight')
        image_loss_weight = _weight(image_loss_weight, 'image_loss_weight')
        if not isinstance(teacher_fp16_rounding, bool):
            raise TypeError('teacher_fp16_rounding must be a bool, got '
                            f'{teacher_fp16_rounding!r}')
        super().__init__(dict(prompt_learner), clip, **kwargs)
        if not hasattr(self.prompt_learner, 'vision_prompts'):
            raise TypeError(
                'PromptSRCHead needs a deep prompt learner (its prompts of '
                'both towers: IVLPPromptLearner, or DeepLanguagePromptLearner '
                'for the original\'s PROMPT_DEPTH_VISION 0), got '
                f'{type(self.prompt_learner).__name__}')
        self.text_loss_weight = text_loss_weight
        self.image_loss_weight = image_loss_weight
        self.teacher_fp16_rounding = teacher_fp16_rounding
        # The original's fixed_embeddings: built by an fp32 CLIP.
        self.bank = TextFeatureBank(
            self.clip, templates, 'mean_normalize', precision='fp32')
        self._zero_shot_features: Optional[torch.Tensor] = None

    @property
    def templates(self) -> List[str]:
        """The hand-written templates of the teacher's text features."""
        return self.bank.templates

    def teacher_text_features(self) -> torch.Tensor:
        """``w_zs``: the normalised mean template features of the current
        classes, ``(K, D)``, fp32, without gradient."""
        return self.bank(self.class_names)

    def zero_shot_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """``f_zs``: normalised features ``(B, D)`` of the frozen tower
        without prompts, without a graph."""
        with torch.no_grad():
            features = self.clip.encode_image(images)
            return features / features.norm(dim=-1, keepdim=True)

    def extract_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Prompted image features ``(B, D)``; in training mode also the
        zero-shot ones, kept for :meth:`loss`."""
        features = super().extract_image_features(images)
        if not self.training:
            self._zero_shot_features = None
        elif self.prompt_learner.vision_prompts()[0] is None:
            # No vision prompts (depth 0): the features are the zero-shot
            # ones already, computed without a graph.
            self._zero_shot_features = features
        else:
            self._zero_shot_features = self.zero_shot_image_features(images)
        return features

    def loss(self, feats: Tuple[torch.Tensor], data_samples: list,
             **kwargs) -> Dict[str, torch.Tensor]:
        """Cross-entropy (``loss``) and the three self-regularising terms.

        Args:
            feats (tuple[Tensor]): The prompted, normalised image features
                ``(B, D)`` of :meth:`extract_image_features`, called in
                training mode on the same images just before.
            data_samples (list[DataSample]): With ``gt_label``.

        Returns:
            dict[str, Tensor]: ``loss``, ``loss_scl_text``,
            ``loss_scl_image`` and ``loss_scl_logits``.
        """
        zero_shot, self._zero_shot_features = self._zero_shot_features, None
        image = self.pre_logits(feats)
        if zero_shot is None or zero_shot.shape != image.shape:
            raise RuntimeError(
                'PromptSRCHead.loss needs the zero-shot image features of '
                'the same images: call extract_image_features(images) in '
                'training mode first (PromptClassifier does it)')
        with torch.autocast(image.device.type, enabled=False):
            image = image.float()
            text = self.text_features().float()  # (K, D), with gradients
            text = text / text.norm(dim=-1, keepdim=True)
            scale = self.clip.logit_scale.float().exp()
            logits = scale * image @ text.t()  # (B, K)
            teacher = self.teacher_text_features().to(text.device)
            rounded = (
                teacher.half().float()
                if self.teacher_fp16_rounding else teacher)
            zero_shot = zero_shot.float()
            zero_shot_logits = scale * zero_shot @ rounded.t()
            losses = self._get_loss(logits, data_samples, **kwargs)
            losses['loss_scl_text'] = self.text_loss_weight * F.l1_loss(
                text, teacher)
            losses['loss_scl_image'] = self.image_loss_weight * F.l1_loss(
                image, zero_shot)
            losses['loss_scl_logits'] = F.kl_div(
                F.log_softmax(logits, dim=1),
                F.log_softmax(zero_shot_logits, dim=1),
                reduction='sum',
                log_target=True) / logits.numel()
        return losses
