# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP-Adapter: a residual bottleneck MLP on the frozen image feature."""
import math
import warnings
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.registry import MODELS
from .base import BaseAdapter, FeatureSet

__all__ = ['CLIPAdapter']


@MODELS.register_module()
class CLIPAdapter(BaseAdapter):
    """The image adapter of `CLIP-Adapter <https://arxiv.org/abs/2110.04544>`_.

    .. math::

        A(f) = \\mathrm{ReLU}(W_2\\,\\mathrm{ReLU}(W_1 f)), \\qquad
        f' = r \\cdot A(f) + (1 - r) \\cdot f,

        \\mathrm{logits} = e^{s} \\cdot \\frac{f'}{\\|f'\\|}
            \\cdot \\Bigl(\\frac{t}{\\|t\\|}\\Bigr)^\\top

    on the UNNORMALISED image feature ``f`` (the adapter acts before the
    normalisation, as the original's ``CustomCLIP.forward``), with
    ``W_1: D → D/reduction`` and ``W_2: D/reduction → D``, no biases, a
    ReLU after both layers (so ``A(f) ≥ 0``), ``s`` the CLIP's
    ``logit_scale`` and ``t`` the text features of one hand-written template
    per class (the original's CoOp template table,
    :class:`~mmprompt.models.heads.TextFeatureBank`).

    The original (gaopengcuhk/CLIP-Adapter ``clip_adapter.py``) hard-codes
    ``D = 1024`` (RN50); here ``D`` is the width of the features (the
    CLIP's ``embed_dim``): given as ``in_channels``, or taken from the
    training features in :meth:`fit` (empty weights until then; the
    training loop points the optimizer at the built ones). Parameter names
    are the original's (``fc.0.weight`` ``(D/r, D)``, ``fc.2.weight``
    ``(D, D/r)``), their initialisation ``nn.Linear``'s, as the
    original's. The runner trains
    them with cross-entropy on batches of cached features.

    ``s`` is the CLIP's ``logit_scale``, kept in the buffer of that name
    (the log of the scale, as CLIP's parameter): the classifier sets it
    from its CLIP (:meth:`set_logit_scale`) unless ``logit_scale`` is
    given.

    Args:
        in_channels (int, optional): ``D``. None takes it from the training
            features in :meth:`fit`. Defaults to None.
        reduction (int): The bottleneck's reduction. Defaults to 4 (the
            original's).
        ratio (float): ``r``, the weight of the adapted feature in the
            residual mix. Defaults to 0.2 (the original's).
        logit_scale (float, optional): ``s`` (a log scale: the logits are
            multiplied by ``exp(s)``); None takes the CLIP's.
            Defaults to None.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmprompt.models.adapters import CLIPAdapter
        >>> adapter = CLIPAdapter(64, logit_scale=4.6052)
        >>> adapter.fc[0].weight.shape
        torch.Size([16, 64])
        >>> text = F.normalize(torch.randn(5, 64), dim=-1)
        >>> adapter(torch.randn(3, 64), text).shape
        torch.Size([3, 5])
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 reduction: int = 4,
                 ratio: float = 0.2,
                 logit_scale: Optional[float] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels is not None and (not isinstance(in_channels, int)
                                        or in_channels < 1):
            raise ValueError('in_channels must be None or a positive int '
                             f"(the CLIP's embed_dim), got {in_channels!r}")
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(
                f'reduction must be a positive int, got {reduction!r}')
        if not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise ValueError(f'ratio must be in [0, 1], got {ratio!r}')
        self.reduction = reduction
        self.ratio = float(ratio)
        with warnings.catch_warnings():  # empty until built: no init
            warnings.simplefilter('ignore', UserWarning)
            self.fc = nn.Sequential(
                nn.Linear(0, 0, bias=False), nn.ReLU(inplace=True),
                nn.Linear(0, 0, bias=False), nn.ReLU(inplace=True))
        if in_channels is not None:
            self.build(in_channels)
        self.register_buffer(
            'logit_scale',
            torch.tensor(
                float('nan') if logit_scale is None else float(logit_scale)))
        self.fixed_logit_scale = logit_scale is not None

    @property
    def in_channels(self) -> Optional[int]:
        width = self.fc[0].weight.shape[1]
        return width if width else None

    def build(self, in_channels: int) -> None:
        """Give the two layers their shapes for features of width
        ``in_channels``, with ``nn.Linear``'s initialisation, as new
        parameters (``AdapterTrainLoop`` points the optimizer at them; a
        parameter resized in place breaks autograd once DDP has hooked
        it)."""
        hidden = in_channels // self.reduction
        if hidden < 1:
            raise ValueError(
                f'reduction={self.reduction} leaves no hidden unit for '
                f'features of width {in_channels}')
        for layer, (n_in, n_out) in zip(
            (self.fc[0], self.fc[2]),
            ((in_channels, hidden), (hidden, in_channels))):
            old = layer.weight
            layer.in_features, layer.out_features = n_in, n_out
            layer.weight = nn.Parameter(
                old.new_empty(n_out, n_in), requires_grad=old.requires_grad)
            layer.reset_parameters()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint's layers give an unbuilt adapter its width.
        saved = state_dict.get(prefix + 'fc.0.weight')
        if self.in_channels is None and isinstance(saved, torch.Tensor) \
                and saved.dim() == 2 and saved.shape[1]:
            self.build(saved.shape[1])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_logit_scale(self, logit_scale) -> None:
        """Take the CLIP's ``logit_scale`` (its log value), unless one was
        given at construction."""
        if not self.fixed_logit_scale:
            self.logit_scale.fill_(float(logit_scale))

    def fit(self, train: FeatureSet, val: Optional[FeatureSet],
            text: torch.Tensor) -> Dict[str, Any]:
        """Build the layers for the features' width (if not built yet)."""
        if self.in_channels is None:
            self.build(train.features.shape[-1])
        return {}

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        """``f' = r·A(f) + (1 − r)·f`` of raw features ``(B, D)``,
        unnormalised."""
        if self.in_channels is None:
            raise RuntimeError(
                'CLIPAdapter has no weights yet: give in_channels, fit() it '
                'on training features (tools/train.py does) or load a '
                'checkpoint of a trained CLIP-Adapter')
        if features.shape[-1] != self.in_channels:
            raise ValueError(
                f'image features of width {features.shape[-1]} given to a '
                f'CLIPAdapter of in_channels={self.in_channels}')
        x = features.to(self.fc[0].weight.dtype)
        return self.ratio * self.fc(x) + (1 - self.ratio) * x

    def forward(self, features: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        """``exp(s) · norm(f') · norm(t)ᵀ``.

        Args:
            features (Tensor): ``(B, D)``, raw (unnormalised).
            text (Tensor): ``(K, D)``, the classes' text features.

        Returns:
            Tensor: ``(B, K)``.
        """
        if math.isnan(self.logit_scale.item()):
            raise RuntimeError(
                "CLIPAdapter's logit_scale is not set: the classifier sets "
                "it from its CLIP (set_logit_scale), or give logit_scale")
        adapted = F.normalize(self.adapt(features), dim=-1)
        text = F.normalize(text.to(adapted.dtype), dim=-1)
        return self.logit_scale.exp() * adapted @ text.t()  # (B, K)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, '
                f'reduction={self.reduction}, ratio={self.ratio}')
