# Copyright (c) mmprompt contributors. All rights reserved.
"""Frozen CLIP text features of hand-written prompts: the zero-shot
classifier, and the teacher of the methods that keep a learned prompt close
to CLIP's own knowledge (KgCoOp, ProGrad, PromptSRC) or start from it
(the adapters)."""
import contextlib
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .templates import resolve_templates

__all__ = ['TextFeatureBank', 'AGGREGATIONS']

#: How the features of several templates become one per class.
#: ``'normalize_mean'``: each template's feature L2-normalised, averaged,
#: normalised again (CLIP's prompt ensembling; CoOp's zero-shot baseline,
#: Tip-Adapter, LP++). ``'mean_normalize'``: the raw features averaged, then
#: normalised (PromptSRC, TaskRes). With one template both are the
#: normalised feature.
AGGREGATIONS = ('normalize_mean', 'mean_normalize')


class TextFeatureBank:
    """Text features of ``template.format(name)`` for every class, computed
    once per set of class names with the frozen CLIP.

    The features are computed without gradients by the same frozen
    :class:`~mmprompt.models.OpenCLIP` the prompts run through (no second
    copy of CLIP), in its precision, and kept (in fp32, normalised) until
    the class names or the CLIP's device change: the evaluated classes of a
    base-to-new test get their own features.

    Args:
        clip (OpenCLIP): The frozen CLIP.
        templates (str | Sequence[str]): A template with ``'{}'``, a dataset
            or template-set name, or a list
            (:func:`~mmprompt.models.heads.resolve_templates`).
            Defaults to 'a photo of a {}.'.
        aggregation (str): One of :data:`AGGREGATIONS`.
            Defaults to 'normalize_mean'.
        replace_underscore (bool): Read ``_`` in class names as a space, as
            CoOp and most of its successors do (TaskRes and CLAP do not).
            Defaults to True.
        table (str): The per-dataset template table a dataset name in
            ``templates`` is looked up in (``'coop'``, ``'prograd'``, ...;
            :data:`~mmprompt.models.heads.TEMPLATE_TABLES`): the originals
            differ. Defaults to 'coop'.
        precision (str, optional): ``'fp32'`` computes the features in
            fp32 whatever the CLIP's precision, as ProGrad's teacher (a
            ``clip_model.float()`` copy beside the fp16 student): the text
            tower's weights are cast for this computation only (exact for
            the fp16 values of OpenAI's weights) and put back. None computes
            in the CLIP's precision. Defaults to None.

    Examples:
        >>> from mmprompt.models import OpenCLIP
        >>> from mmprompt.models.heads import TextFeatureBank
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> bank = TextFeatureBank(clip, 'imagenet-7')
        >>> bank(['cat', 'sea_lion']).shape
        torch.Size([2, 64])
    """

    def __init__(self,
                 clip: nn.Module,
                 templates: Union[str, Sequence[str]] = 'a photo of a {}.',
                 aggregation: str = 'normalize_mean',
                 replace_underscore: bool = True,
                 table: str = 'coop',
                 precision: Optional[str] = None) -> None:
        if precision not in (None, 'fp32'):
            raise ValueError("precision must be None (the CLIP's) or "
                             f"'fp32', got {precision!r}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f'aggregation must be one of {AGGREGATIONS}, '
                             f'got {aggregation!r}')
        self.clip = clip
        self.templates = resolve_templates(templates, table)
        self.aggregation = aggregation
        self.replace_underscore = replace_underscore
        self.precision = precision
        self._key: Optional[Tuple] = None
        self._features: Optional[torch.Tensor] = None

    def prompts(self, class_names: Sequence[str]) -> list:
        """The texts of each template, ``[template][class]``."""
        names = [
            n.replace('_', ' ') if self.replace_underscore else n
            for n in class_names
        ]
        return [[t.format(n) for n in names] for t in self.templates]

    @torch.no_grad()
    def _encode(self, class_names: Sequence[str]) -> torch.Tensor:
        per_template = []
        with self._in_precision():
            for texts in self.prompts(class_names):
                features = self.clip.encode_text_tokens(
                    self.clip.tokenize(texts)).float()  # (K, D)
                if self.aggregation == 'normalize_mean':
                    features = F.normalize(features, dim=-1)
                per_template.append(features)
        if len(per_template) == 1:  # normalised once, as the originals
            return F.normalize(per_template[0], dim=-1)
        return F.normalize(torch.stack(per_template).mean(0), dim=-1)

    @contextlib.contextmanager
    def _in_precision(self):
        """Within the block, the text tower computes in ``precision``: its
        floating-point weights are replaced by fp32 copies, and the very
        tensors they were are put back after."""
        model = getattr(self.clip, 'model', None)
        if self.precision is None or model is None:
            yield
            return
        text = self.clip._text_tower(model)
        swapped = [(p, p.data) for name, p in text.named_parameters()
                   if not name.startswith('visual.') and p.is_floating_point()
                   and p.dtype != torch.float32]
        try:
            for p, data in swapped:
                p.data = data.float()
            yield
        finally:
            for p, data in swapped:
                p.data = data

    def __call__(self, class_names: Sequence[str]) -> torch.Tensor:
        """The normalised features of ``class_names``, ``(K, D)``, fp32.

        Args:
            class_names (Sequence[str]): The classes, in label order.

        Returns:
            Tensor: ``(K, D)``, L2-normalised, without gradient.
        """
        names = tuple(class_names)
        if not names:
            raise ValueError('class_names is empty: give at least one class')
        key = (names, self.clip.device)
        if self._key != key:
            self._features = self._encode(names)
            self._key = key
        return self._features
