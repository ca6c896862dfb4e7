# Copyright (c) mmprompt contributors. All rights reserved.
"""What the heads share: the frozen CLIP, cosine logits, and for prompt
heads a prompt learner and a text encoder."""
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead

from mmprompt.registry import MODELS

__all__ = ['CLIPHead', 'BasePromptHead']


class CLIPHead(ClsHead):
    """A classification head whose weights are CLIP text features.

    ``logits = logit_scale.exp() * cos(f, g_i)`` for the L2-normalised image
    feature ``f`` and the text feature ``g_i`` of class ``i``, computed in
    fp32 whatever the CLIP's precision. Subclasses say where ``g`` comes
    from and which classes are scored (:meth:`set_class_names`).

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
        """The classes the head scores now, in label order."""
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
        # fp32 also under autocast: the logits feed a softmax over classes.
        with torch.autocast(image_features.device.type, enabled=False):
            scale = self.clip.logit_scale.float().exp()
            f = image_features.float()
            g = F.normalize(text_features.float(), dim=-1)
            if g.dim() == 2:
                return scale * f @ g.t()
            return scale * torch.einsum('bd,bkd->bk', f, g)


#: Head arguments of mmprompt <= 0.1 that now configure the text encoder.
_DEPRECATED = ('prefix_cache', 'text_chunk_size', 'grad_checkpointing')


class BasePromptHead(CLIPHead):
    """A head whose class weights are the text features of learned prompts.

    The prompt learner turns its parameters (and, for conditional methods,
    the image features) into :class:`~mmprompt.models.Prompts`; the text
    encoder turns those into text features; the logits are their cosine
    similarity with the image features.

    Args:
        prompt_learner (dict): Config of the prompt learner, built with the
            head's CLIP.
        clip (OpenCLIP | dict): The frozen CLIP (the classifier passes it).
        text_encoder (dict): Config of the text encoder:
            ``PrefixCachedTextEncoder`` (the default: shared prefixes
            encoded once, falling back to the plain encoder where prompts
            share none) or ``PlainTextEncoder`` (the reference), with their
            ``text_chunk_size`` and ``grad_checkpointing``. Defaults to
            ``dict(type='PrefixCachedTextEncoder')``.
        loss (dict): Config of the loss. Defaults to cross-entropy.
        topk (int | tuple[int]): Top-k accuracies when ``cal_acc``.
            Defaults to (1, ).
        cal_acc (bool): Log the training accuracy. Defaults to False.
        init_cfg (dict, optional): Unused. Defaults to None.
        **deprecated: ``prefix_cache``, ``text_chunk_size`` and
            ``grad_checkpointing`` of mmprompt 0.1's heads, accepted with a
            ``FutureWarning`` and passed to the text encoder
            (``prefix_cache=False`` selects ``PlainTextEncoder``).
    """

    def __init__(self,
                 prompt_learner: dict,
                 clip: Union[nn.Module, dict, None] = None,
                 text_encoder: dict = dict(type='PrefixCachedTextEncoder'),
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = None,
                 **deprecated) -> None:
        super().__init__(
            clip=clip,
            loss=loss,
            topk=topk,
            cal_acc=cal_acc,
            init_cfg=init_cfg)
        # a partial dict (--cfg-options model.head.text_encoder.X=...)
        # replaces the default one: keep its type
        text_encoder = dict(text_encoder)
        text_encoder.setdefault('type', 'PrefixCachedTextEncoder')
        text_encoder = self._upgrade(text_encoder, deprecated)
        self.prompt_learner = MODELS.build(
            prompt_learner, default_args=dict(clip=self.clip))
        self.text_encoder = MODELS.build(
            text_encoder, default_args=dict(clip=self.clip))

    def _upgrade(self, text_encoder: dict, deprecated: dict) -> dict:
        """Apply mmprompt 0.1's head arguments to the text encoder config."""
        unknown = sorted(set(deprecated) - set(_DEPRECATED))
        if unknown:
            raise TypeError(
                f'{type(self).__name__} got unexpected arguments {unknown}')
        if not deprecated:
            return text_encoder
        warnings.warn(
            f'{type(self).__name__}({", ".join(sorted(deprecated))}=...) is '
            'deprecated: set them on the text encoder instead, e.g. '
            "head=dict(text_encoder=dict(type='PrefixCachedTextEncoder', "
            'text_chunk_size=2000, grad_checkpointing=True)) or '
            "dict(type='PlainTextEncoder') for prefix_cache=False",
            FutureWarning,
            stacklevel=3)
        deprecated = dict(deprecated)
        if deprecated.pop('prefix_cache', True) is False:
            text_encoder['type'] = 'PlainTextEncoder'
            text_encoder.pop('cpu_text_rows', None)
        text_encoder.update(deprecated)
        return text_encoder

    @property
    def class_names(self) -> list:
        """The classes the head scores now, in label order."""
        return self.prompt_learner.class_names

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Set the classes the head scores, in label order."""
        self.prompt_learner.set_class_names(class_names)
