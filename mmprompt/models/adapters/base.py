# Copyright (c) mmprompt contributors. All rights reserved.
"""What every method on frozen CLIP features implements (Tip-Adapter,
Tip-Adapter-F, CLIP-Adapter, the linear probes)."""
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmprompt.utils import SEARCH_SPLITS, FeatureSet, check_search_split

__all__ = [
    'BaseAdapter', 'FeatureSet', 'SEARCH_SPLITS', 'check_search_split',
    'one_hot'
]


class BaseAdapter(BaseModule):
    """Base class of the methods that learn on frozen CLIP features.

    An adapter is built by :class:`~mmprompt.models.AdapterClassifier`,
    which owns the frozen CLIP, the hand-written-template text features
    (a :class:`~mmprompt.models.heads.TextFeatureBank`) and the class
    names. The adapter holds only what the method learns or fits, all of it
    in its ``state_dict`` (the checkpoint). The runner drives it through
    ``AdapterTrainLoop`` (``mmprompt/engine/loops.py``) on cached features
    (``CachedFeatureDataset`` and ``FeatureCacheHook``):

    1. :meth:`fit` once before training, on every view of the training
       features and (if configured) the validation features: a training-free
       or closed-form method does all of its work here (Tip-Adapter's cache,
       a scikit-learn fit with its C search on ``val``); a trained method
       initialises its parameters here (Tip-Adapter-F's keys).
    2. If the loop has epochs, the runner trains the adapter's parameters
       (those with ``requires_grad``) on batches of cached training features
       with :meth:`loss`, through ``optim_wrapper`` and ``param_scheduler``
       like any mmengine model. Epoch ``e`` reads view ``e % V``.
    3. :meth:`search` once after the last epoch (before its checkpoint is
       saved, so the chosen values are in it), on the split the loop's
       ``search_split`` names (``'val'`` or ``'train'``; ``'test'`` is
       refused by :func:`check_search_split` before any adapter sees it).

    :meth:`fit` and :meth:`search` return what they chose as
    ``{name: {'value': ..., 'split': ...}}``: the loop logs it and writes
    it to the work dir's ``adapter_choices.json``.

    Shapes: ``features`` ``(B, D)`` raw (unnormalised) CLIP image
    features, ``text`` ``(K, D)`` the L2-normalised text features of the
    ``K`` classes scored, logits ``(B, K)``.

    A subclass implements :meth:`forward` and, as needed, :meth:`fit`,
    :meth:`search` and :meth:`loss` (default: cross-entropy of
    :meth:`forward`). Register it in ``MODELS``.
    """

    def forward(self, features: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        """The logits ``(B, K)`` of raw features ``(B, D)``."""
        raise NotImplementedError

    def loss(self, features: torch.Tensor, labels: torch.Tensor,
             text: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The losses of a training batch; cross-entropy by default.

        Args:
            features (Tensor): ``(B, D)`` raw features.
            labels (Tensor): ``(B, )``.
            text (Tensor): ``(K, D)`` normalised text features.

        Returns:
            dict[str, Tensor]: ``{'loss': ...}`` and anything to log.
        """
        logits = self(features, text)
        return dict(loss=F.cross_entropy(logits.float(), labels))

    def fit(self, train: FeatureSet, val: Optional[FeatureSet],
            text: torch.Tensor) -> Dict[str, Any]:
        """Fit on the cached features before training (nothing by default).

        Returns:
            dict: What was chosen, ``{name: {'value', 'split'}}``.
        """
        return {}

    def search(self, data: FeatureSet, text: torch.Tensor) -> Dict[str, Any]:
        """Choose hyper-parameters on ``data`` after training (nothing by
        default). ``data.split`` is never ``'test'``.

        Returns:
            dict: What was chosen, ``{name: {'value', 'split'}}``.
        """
        return {}

    @property
    def trainable(self) -> bool:
        """Whether the runner has parameters to train."""
        return any(p.requires_grad for p in self.parameters())

    @property
    def num_classes(self) -> Optional[int]:
        """The number of classes the adapter was fitted for; None when it
        works for any class set."""
        return None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Tensors whose size the data sets (a cache of N·K entries) are
        # empty until fitted: they take the checkpoint's shape.
        # New tensors, not resized ones (see AdapterTrainLoop.fit).
        for table in (self._parameters, self._buffers):
            for name, tensor in list(table.items()):
                saved = state_dict.get(prefix + name)
                if tensor is None or tensor.numel() or not isinstance(
                        saved, torch.Tensor) or saved.shape == tensor.shape:
                    continue
                new = tensor.detach().new_zeros(saved.shape)
                if table is self._parameters:
                    new = nn.Parameter(new, requires_grad=tensor.requires_grad)
                table[name] = new
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(N, C)`` float one-hot rows of ``labels``."""
    return F.one_hot(labels.long(), num_classes).float()
