# Copyright (c) mmprompt contributors. All rights reserved.
"""Heads of the deep-prompt methods: the image tower runs with the
learner's vision tokens."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmprompt.registry import MODELS
from .base import CLIPHead
from .coop_head import CoOpHead
from .text_bank import TextFeatureBank

__all__ = ['DeepPromptHead', 'VPTDeepHead', 'encode_prompted_images']


def encode_prompted_images(clip: nn.Module, learner: nn.Module,
                           images: torch.Tensor) -> torch.Tensor:
    """L2-normalised image features ``(B, D)`` with ``learner``'s vision
    tokens (``learner.vision_prompts()``), with a graph to them; without
    vision tokens the frozen tower's, without a graph (as
    ``PromptClassifier`` computes them for every other head)."""
    tokens, rows = learner.vision_prompts()
    if tokens is None:
        with torch.no_grad():
            features = clip.encode_image(images)
    else:
        features = clip.encode_image(
            images, tokens, rows, rows_dtype=learner.rows_dtype)
    return features / features.norm(dim=-1, keepdim=True)


@MODELS.register_module()
class DeepPromptHead(CoOpHead):
    """Prompts in both towers: deep language prompting, IVLP, MaPLe.

    The image features come from the image tower run with the learner's
    vision tokens (``PromptClassifier.extract_feat`` calls
    :meth:`extract_image_features`), the text features from its prompts
    with their deep text rows, and the logits are CLIP's::

        f = normalize(E_img(x; vision_prompts))     # (B, D), with a graph
        g = E_txt(prompt_learner())                  # context + deep rows
        logits = logit_scale.exp() * cos(f, g)       # (B, K)

    Everything else is :class:`CoOpHead`'s (text features cached in
    evaluation until the class names or a parameter change). A learner
    without vision tokens (deep language prompting) keeps the frozen image
    pass, without a graph.

    Args:
        prompt_learner (dict): Config of the prompt learner, e.g.
            ``dict(type='MaPLePromptLearner', n_ctx=2, depth=9)``.
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        **kwargs: The arguments of :class:`CoOpHead` (``text_encoder``,
            ``loss``, ``cache_text_features``, ...).

    Examples:
        >>> import torch
        >>> from mmprompt.models import OpenCLIP
        >>> from mmprompt.models.heads import DeepPromptHead
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> head = DeepPromptHead(
        ...     dict(type='MaPLePromptLearner', depth=2), clip)
        >>> head.set_class_names(['cat', 'dog', 'bird'])
        >>> feats = head.extract_image_features(torch.rand(2, 3, 32, 32))
        >>> head((feats, )).shape
        torch.Size([2, 3])
    """

    def extract_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image features ``(B, D)`` with the vision prompts."""
        return encode_prompted_images(self.clip, self.prompt_learner, images)


@MODELS.register_module()
class VPTDeepHead(CLIPHead):
    """Deep visual prompt tuning: vision prompts, fixed text features.

    ``logits = logit_scale.exp() * cos(f, w)`` where ``f`` is the image
    feature with the learner's vision tokens and ``w`` the frozen text
    features of ``"a photo of a {name}."`` (the original's), computed in
    fp32 by a :class:`TextFeatureBank` over the same frozen CLIP (the
    original builds them once with a ``model.float()`` copy) and kept until
    the class names change. Nothing of the text side is learned or saved.

    Args:
        prompt_learner (dict): Config of the learner, e.g.
            ``dict(type='VPTDeepPromptLearner', n_vision_ctx=8,
            vision_depth=12)``.
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        templates (str | Sequence[str]): The text prompts of the classes
            (:class:`TextFeatureBank`). Defaults to 'a photo of a {}.'.
        precision (str, optional): The bank's precision. Defaults to
            'fp32', as the original.
        loss (dict): Config of the loss. Defaults to cross-entropy.
        topk (int | tuple[int]): Top-k accuracies when ``cal_acc``.
            Defaults to (1, ).
        cal_acc (bool): Log the training accuracy. Defaults to False.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.models import OpenCLIP
        >>> from mmprompt.models.heads import VPTDeepHead
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> head = VPTDeepHead(
        ...     dict(type='VPTDeepPromptLearner', vision_depth=2), clip)
        >>> head.set_class_names(['cat', 'dog', 'bird'])
        >>> feats = head.extract_image_features(torch.rand(2, 3, 32, 32))
        >>> head((feats, )).shape
        torch.Size([2, 3])
    """

    def __init__(self,
                 prompt_learner: dict,
                 clip: Union[nn.Module, dict, None] = None,
                 templates: Union[str, Sequence[str]] = 'a photo of a {}.',
                 precision: Optional[str] = 'fp32',
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
        self.prompt_learner = MODELS.build(
            prompt_learner, default_args=dict(clip=self.clip))
        self.bank = TextFeatureBank(self.clip, templates, precision=precision)
        self._class_names: list = []

    @property
    def templates(self) -> list:
        """The templates of the fixed text features."""
        return self.bank.templates

    @property
    def class_names(self) -> list:
        return list(self._class_names)

    def set_class_names(self, class_names: Sequence[str]) -> None:
        names = list(class_names)
        self.bank(names)  # checks them; features kept until they change
        self._class_names = names

    def text_features(self) -> torch.Tensor:
        """The fixed, normalised text features ``(K, D)`` (fp32)."""
        if not self._class_names:
            raise RuntimeError(
                'no class names are set: call set_class_names(names) (the '
                "runner does it from the dataset's metainfo['classes'] "
                'through ClassNamesHook)')
        return self.bank(self._class_names)

    def extract_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image features ``(B, D)`` with the vision prompts."""
        return encode_prompted_images(self.clip, self.prompt_learner, images)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits ``(B, K)`` from normalised image features ``(B, D)``."""
        return self.cosine_logits(self.pre_logits(feats), self.text_features())
