# Copyright (c) mmprompt contributors. All rights reserved.
"""The classifier of the methods on frozen CLIP features: one frozen CLIP,
the zero-shot text features and an adapter."""
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.structures import DataSample

from mmprompt.registry import MODELS
from mmprompt.utils import (check_search_split, init_options,
                            weights_fingerprint)
from ..adapters import BaseAdapter, FeatureSet
from ..heads import TextFeatureBank
from .prompt_classifier import CLIP_MEAN, CLIP_STD

__all__ = ['AdapterClassifier', 'AdapterDataPreprocessor']


@MODELS.register_module()
class AdapterDataPreprocessor(ClsDataPreprocessor):
    """mmpretrain's ``ClsDataPreprocessor`` that also takes cached features.

    A batch whose inputs are features (``(D, )`` each, as
    ``CachedFeatureDataset`` yields them, or a ``(B, D)`` tensor) is
    stacked and moved to the model's device as it is: no colour order,
    mean or std applies to a feature. Images go through
    ``ClsDataPreprocessor`` unchanged.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        is_features = isinstance(
            first, torch.Tensor) and (first.dim() == 1 if isinstance(
                inputs, (list, tuple)) else first.dim() == 2)
        if not is_features:
            return super().forward(data, training)
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        data = self.cast_data(dict(data, inputs=inputs))
        return dict(
            inputs=data['inputs'].float(),
            data_samples=data.get('data_samples'))


@MODELS.register_module()
class AdapterClassifier(BaseClassifier):
    """Classification with an adapter on the features of a frozen CLIP
    (Tip-Adapter, Tip-Adapter-F, CLIP-Adapter, linear probes).

    ``logits = adapter(f, W)``: ``f`` the raw (unnormalised) image feature
    of the frozen CLIP ``(B, D)``, ``W`` the normalised text features of
    hand-written templates of the ``K`` classes ``(K, D)`` from a
    :class:`~mmprompt.models.heads.TextFeatureBank` on the same CLIP. Its
    inputs are images (inference, a test without cached features) or
    cached features ``(B, D)`` (``CachedFeatureDataset``; the image tower is
    then not run). Only the adapter's state is saved.

    Args:
        clip (dict | OpenCLIP): The frozen CLIP, e.g.
            ``dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai')``.
        adapter (dict): Config of the adapter (a
            :class:`~mmprompt.models.adapters.BaseAdapter`).
        text (dict): Arguments of the ``TextFeatureBank``: ``templates``,
            ``table``, ``aggregation``, ``replace_underscore``,
            ``precision``. Defaults to ``dict(templates='a photo of a
            {}.')``.
        class_names (Sequence[str], optional): Classes to score from the
            start (``ClassNamesHook`` sets them from the data). Defaults to
            None.
        data_preprocessor (dict, optional): Defaults to
            :class:`AdapterDataPreprocessor` with CLIP's mean and std.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.registry import MODELS
        >>> model = MODELS.build(dict(
        ...     type='AdapterClassifier',
        ...     clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit',
        ...               pretrained=None),
        ...     adapter=dict(type='TipAdapter', search=None),
        ...     class_names=['cat', 'dog']))
        >>> train = model.extract_features(torch.rand(4, 3, 32, 32))
        >>> from mmprompt.models.adapters import FeatureSet
        >>> _ = model.fit(FeatureSet(train[None], torch.tensor([0, 1, 0, 1]),
        ...                          'train'))
        >>> model(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 2])
    """

    def __init__(self,
                 clip: Union[dict, nn.Module],
                 adapter: dict,
                 text: dict = dict(templates='a photo of a {}.'),
                 class_names: Optional[Sequence[str]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='AdapterDataPreprocessor',
                mean=CLIP_MEAN,
                std=CLIP_STD,
                to_rgb=True)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'AdapterDataPreprocessor')
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        self.clip = MODELS.build(clip) if isinstance(clip, dict) else clip
        self.text_bank = TextFeatureBank(self.clip, **dict(text))
        self.adapter = MODELS.build(adapter)
        if not isinstance(self.adapter, BaseAdapter):
            raise TypeError(
                f'adapter must be a BaseAdapter (TipAdapter, ...), got '
                f'{type(self.adapter).__name__}')
        if hasattr(self.adapter, 'set_logit_scale'):
            # an adapter scoring with the CLIP's own scale (CLIP-Adapter)
            self.adapter.set_logit_scale(self.clip.logit_scale.detach())
        self._class_names: List[str] = []
        if class_names is not None:
            self.set_class_names(class_names)

    @property
    def class_names(self) -> List[str]:
        """The classes scored now, in label order."""
        return list(self._class_names)

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Score these classes from now on (label ``i`` is ``names[i]``)."""
        names = [str(n) for n in class_names]
        if not names:
            raise ValueError('class_names is empty: give at least one class')
        self._class_names = names

    @property
    def dataset_meta(self) -> dict:
        """``{'classes': (...)}``, as mmpretrain's APIs read it."""
        names = self._class_names if '_class_names' in vars(self) else []
        return {'classes': tuple(names)} if names else {}

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        classes = (meta or {}).get('classes')
        if classes:
            self.set_class_names(list(classes))

    _dataset_meta = dataset_meta

    def text_features(self) -> torch.Tensor:
        """The zero-shot text features of the classes, ``(K, D)``, fp32,
        normalised, without gradient."""
        if not self._class_names:
            raise RuntimeError(
                'AdapterClassifier has no class names: set_class_names() '
                '(the ClassNamesHook of the configs does it from the data)')
        return self.text_bank(self._class_names)

    @torch.no_grad()
    def extract_features(self, images: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) image features ``(B, D)``, fp32, of
        preprocessed images; what the feature cache stores."""
        return self.clip.encode_image(images).float()

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Raw features ``(B, D)`` of images or of cached features."""
        if inputs.dim() == 2:  # cached features
            return inputs.float()
        return self.extract_features(inputs)

    def feature_key(self) -> Dict[str, Any]:
        """Everything about the CLIP that changes its image features: part
        of the feature cache's key."""
        return self.checkpoint_meta()['clip']

    def checkpoint_meta(self) -> dict:
        """What a checkpoint of this model is trained with (see
        ``PromptClassifier.checkpoint_meta``): ``clip`` (arch, pretrained,
        weights fingerprint, activation, precision) and ``adapter`` (its
        type and :func:`~mmprompt.utils.init_options`)."""
        clip = self.clip
        pretrained = getattr(clip, 'pretrained', None)
        meta = dict(
            clip=dict(
                arch=getattr(clip, 'arch',
                             type(clip).__name__),
                pretrained=None if pretrained is None else str(pretrained),
                weights=weights_fingerprint(getattr(clip, 'model', clip))),
            head=type(self.adapter).__name__,
            adapter=dict(
                type=type(self.adapter).__name__,
                **init_options(self.adapter)))
        for name in ('activation', 'precision'):
            if hasattr(clip, name):
                meta['clip'][name] = str(getattr(clip, name))
        return meta

    def fit(self,
            train: FeatureSet,
            val: Optional[FeatureSet] = None) -> Dict[str, Any]:
        """The adapter's :meth:`~BaseAdapter.fit` with the text features.
        ``val`` must not be test data."""
        check_search_split(train.split, 'fit (training features)')
        if val is not None:
            check_search_split(val.split, 'fit (validation features)')
        return self.adapter.fit(train, val, self.text_features())

    def search(self, data: FeatureSet) -> Dict[str, Any]:
        """The adapter's :meth:`~BaseAdapter.search` with the text
        features. ``data`` must not be test data."""
        check_search_split(data.split, 'search')
        return self.adapter.search(data, self.text_features())

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """The mmengine model contract: ``'tensor'`` logits ``(B, K)``,
        ``'loss'`` a dict of losses, ``'predict'`` ``DataSample`` s."""
        if mode == 'tensor':
            return self.adapter(
                self.extract_feat(inputs), self.text_features())
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}": expected "tensor", '
                           '"loss" or "predict"')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        labels = torch.cat([s.gt_label
                            for s in data_samples]).to(inputs.device)
        return self.adapter.loss(
            self.extract_feat(inputs), labels, self.text_features())

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        logits = self(inputs).float()
        scores = logits.softmax(dim=-1)
        labels = scores.argmax(dim=-1, keepdim=True).detach()
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(scores))]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples
