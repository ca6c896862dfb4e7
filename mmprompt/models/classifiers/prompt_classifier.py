# Copyright (c) mmprompt contributors. All rights reserved.
"""The classifier of every mmprompt model: frozen CLIP image tower + head."""
import logging
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.registry import Registry
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.structures import DataSample

from mmprompt.registry import DATASETS, MODELS
from mmprompt.utils import init_options, weights_fingerprint

__all__ = ['PromptClassifier', 'CLIP_MEAN', 'CLIP_STD']

# CLIP's normalisation, in the 0-255 range of mmpretrain's preprocessor.
CLIP_MEAN = [0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255]
CLIP_STD = [0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255]


@MODELS.register_module()
class PromptClassifier(BaseClassifier):
    """Image classification with CLIP and prompts, for any set of classes.

    The image tower of a frozen CLIP gives ``f``, L2-normalised; the head
    turns class names into prompts, prompts into text features and both into
    logits. Only the head's prompt learner trains and is saved.

    Args:
        clip (dict | OpenCLIP): Config of the frozen CLIP, e.g.
            ``dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai')``.
        head (dict): Config of the head (``CoOpHead``, ``CoCoOpHead`` or
            ``ZeroShotHead``); it receives the CLIP.
        class_names (Sequence[str], optional): Classes to score from the
            start. The runner sets them from each dataset's
            ``metainfo['classes']`` through ``ClassNamesHook``; mmpretrain's
            ``get_model`` / ``ImageClassificationInferencer`` from the
            checkpoint's ``meta['dataset_meta']`` (see
            :attr:`dataset_meta`). Defaults to None.
        data_preprocessor (dict, optional): Defaults to mmpretrain's
            ``ClsDataPreprocessor`` with CLIP's mean and std and
            ``to_rgb=True``.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.registry import MODELS
        >>> model = MODELS.build(dict(
        ...     type='PromptClassifier',
        ...     clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit',
        ...               pretrained=None),
        ...     head=dict(type='CoOpHead', prompt_learner=dict(
        ...         type='CoOpPromptLearner', n_ctx=4)),
        ...     class_names=['cat', 'dog', 'bird']))
        >>> model(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 3])
    """

    def __init__(self,
                 clip: Union[dict, nn.Module],
                 head: dict,
                 class_names: Optional[Sequence[str]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='ClsDataPreprocessor',
                mean=CLIP_MEAN,
                std=CLIP_STD,
                to_rgb=True)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'ClsDataPreprocessor')
            # Through mmprompt's registry, so that mmpretrain's preprocessors
            # resolve whatever the current default scope.
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        self.clip = MODELS.build(clip) if isinstance(clip, dict) else clip
        self.head = MODELS.build(head, default_args=dict(clip=self.clip))
        if class_names is not None:
            self.set_class_names(class_names)

    @property
    def class_names(self) -> List[str]:
        """The classes the model scores now, in label order."""
        return list(self.head.class_names)

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Score these classes from now on (label ``i`` is ``names[i]``).

        Args:
            class_names (Sequence[str]): The class names; ``_`` reads as a
                space.
        """
        self.head.set_class_names(class_names)

    @property
    def dataset_meta(self) -> dict:
        """The classes scored now, as mmpretrain's APIs read them.

        ``{'classes': (...)}`` in label order, or ``{}`` before any class
        names are set. Setting it sets the class names from its
        ``'classes'`` (a meta without them changes nothing): mmpretrain's
        ``get_model`` / ``init_model`` write a checkpoint's
        ``meta['dataset_meta']`` (the training set's classes, which
        mmengine's Runner saves) to ``model._dataset_meta``, an alias of
        this property, and ``ImageClassificationInferencer`` reads its
        classes from there.

        Without a checkpoint ``get_model`` gives instead the class-level
        ``METAINFO`` of the config's dataset type looked up in mmpretrain's
        scope: for ``Caltech101``, ``ImageNet`` and the other names that
        mmprompt shares with mmpretrain, mmpretrain's class list, not the
        CoOp split's (whose classes come from its split file). Such a
        ``METAINFO`` is not used: a warning says so, and the model keeps
        its class names (none) until :meth:`set_class_names` is called.

        Examples:
            >>> from mmprompt.registry import MODELS
            >>> model = MODELS.build(dict(
            ...     type='PromptClassifier',
            ...     clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit',
            ...               pretrained=None),
            ...     head=dict(type='ZeroShotHead')))
            >>> model.dataset_meta
            {}
            >>> model.dataset_meta = {'classes': ('cat', 'dog')}
            >>> model.class_names, model.dataset_meta
            (['cat', 'dog'], {'classes': ('cat', 'dog')})
        """
        names = self.class_names if 'head' in self._modules else []
        return {'classes': tuple(names)} if names else {}

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        classes = (meta or {}).get('classes')
        if not classes:
            return
        owner = _class_level_metainfo_owner(meta)
        if owner is not None:
            print_log(
                f'PromptClassifier: not using the {len(classes)} class names '
                f'given as dataset_meta ({_preview(classes)}): they are the '
                f'class-level METAINFO of {owner.__module__}.'
                f'{owner.__qualname__}, not classes read from data or from '
                "a checkpoint. mmpretrain's get_model() gives them when it "
                "loads no checkpoint, looking the config's dataset type up "
                "in mmpretrain's scope, where names such as 'Caltech101' "
                "are mmpretrain's datasets, not mmprompt's CoOp splits. "
                'Load a checkpoint trained by mmprompt (get_model(config, '
                'pretrained=CHECKPOINT); its meta holds the classes) or call '
                'model.set_class_names(names).',
                logger='current',
                level=logging.WARNING)
            return
        self.set_class_names(list(classes))

    # mmpretrain.apis.get_model() writes model._dataset_meta, and
    # ImageClassificationInferencer reads it.
    _dataset_meta = dataset_meta

    def checkpoint_meta(self) -> dict:
        """What a checkpoint of this model is trained with: recorded by
        mmprompt's hooks when a checkpoint is saved and compared with the
        model it is loaded into (:func:`mmprompt.utils.check_trained_on`).

        Returns:
            dict: ``clip`` (``arch``, ``pretrained``,
            :func:`~mmprompt.utils.weights_fingerprint` of the weights
            loaded and their ``activation``), ``head`` (its type) and, for
            a prompt head,
            ``prompt_learner`` (its type and
            :func:`~mmprompt.utils.init_options`).

        Examples:
            >>> from mmprompt.registry import MODELS
            >>> model = MODELS.build(dict(
            ...     type='PromptClassifier',
            ...     clip=dict(type='OpenCLIP', arch='mmprompt-tiny-vit',
            ...               pretrained=None),
            ...     head=dict(type='CoOpHead', prompt_learner=dict(
            ...         type='CoOpPromptLearner', n_ctx=4))))
            >>> meta = model.checkpoint_meta()
            >>> meta['clip']['arch'], meta['head']
            ('mmprompt-tiny-vit', 'CoOpHead')
            >>> learner = meta['prompt_learner']
            >>> learner['type'], learner['n_ctx'], learner['ctx_init']
            ('CoOpPromptLearner', 4, '')
        """
        clip = self.clip
        arch = getattr(clip, 'arch', type(clip).__name__)
        pretrained = getattr(clip, 'pretrained', None)
        meta = dict(
            clip=dict(
                arch=arch,
                pretrained=None if pretrained is None else str(pretrained),
                # OpenCLIP keeps its open_clip model unregistered.
                weights=weights_fingerprint(getattr(clip, 'model', clip))),
            head=type(self.head).__name__)
        if hasattr(clip, 'activation'):
            # One weight file read as OpenAI's or open_clip's differs in it
            # alone.
            meta['clip']['activation'] = clip.activation
        learner = getattr(self.head, 'prompt_learner', None)
        if learner is not None:
            meta['prompt_learner'] = dict(
                type=type(learner).__name__, **init_options(learner))
        return meta

    def extract_feat(self, inputs: torch.Tensor) -> tuple:
        """L2-normalised image features ``((B, D), )``.

        A head with vision prompts (IVLP, MaPLe, VPT-deep, ...) defines
        ``extract_image_features(images)``: the image tower then runs with
        its learner's vision tokens and a graph to them. Every other head
        gets the frozen tower's features, computed without a graph.
        """
        extract = getattr(self.head, 'extract_image_features', None)
        if extract is not None:
            return (extract(inputs), )
        # No graph through the frozen tower: nothing in it learns, so the
        # gradients of the prompt learner are the same without it.
        with torch.no_grad():
            features = self.clip.encode_image(inputs)
            features = features / features.norm(dim=-1, keepdim=True)
        return (features, )

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """The mmengine model contract.

        Args:
            inputs (Tensor): Preprocessed images ``(B, 3, H, W)``.
            data_samples (list[DataSample], optional): With ``gt_label`` for
                ``mode='loss'``. Defaults to None.
            mode (str): ``'tensor'`` returns logits ``(B, K)``, ``'loss'`` a
                dict of losses, ``'predict'`` ``DataSample`` s with
                ``pred_score`` and ``pred_label``. Defaults to 'tensor'.
        """
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}": expected "tensor", '
                           '"loss" or "predict"')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        return self.head.loss(self.extract_feat(inputs), data_samples)

    def parse_losses(self, losses: dict) -> tuple:
        """mmengine's: the sum of the ``loss*`` terms, and what to log.

        A head whose update needs the gradient of each term on its own
        (``ProGradHead``: ``ProGradOptimWrapper`` projects one gradient
        away from the other) gives its ``update_terms(losses)`` in place of
        the sum; the logged values are the same.
        """
        loss, log_vars = super().parse_losses(losses)
        update_terms = getattr(self.head, 'update_terms', None)
        if update_terms is not None:
            loss = update_terms(losses)
        return loss, log_vars

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        return self.head.predict(self.extract_feat(inputs), data_samples)


def _preview(names: Sequence[str], n: int = 3) -> str:
    shown = ', '.join(repr(str(name)) for name in list(names)[:n])
    return shown + (', ...' if len(names) > n else '')


def _class_level_metainfo_owner(meta: dict) -> Optional[type]:
    """The registered dataset class whose class attribute ``METAINFO`` is
    ``meta`` itself (not a copy), in any scope; None if there is none."""

    def search(registry: Registry) -> Optional[type]:
        for cls in registry.module_dict.values():
            if isinstance(cls, type) and any(
                    vars(klass).get('METAINFO') is meta
                    for klass in cls.__mro__):
                return cls
        for child in registry.children.values():
            found = search(child)
            if found is not None:
                return found
        return None

    return search(DATASETS.root)
