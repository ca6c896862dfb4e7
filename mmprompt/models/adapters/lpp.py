# Copyright (c) mmprompt contributors. All rights reserved.
"""LP++: a linear probe on CLIP's image features with a text term."""
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.registry import MODELS
from .base import BaseAdapter, FeatureSet, check_search_split

__all__ = ['LPPlusPlus']

ALPHA_GRADS = ('accumulated', 'current')


@MODELS.register_module()
class LPPlusPlus(BaseAdapter):
    """LP++, a text-aware linear probe
    (`LP++ <https://arxiv.org/abs/2404.02285>`_, CVPR 2024).

    .. math::

        \\mathrm{logits}(f) = f W^\\top + b + \\alpha \\odot (f T^\\top)

    with ``f`` the L2-normalised image feature ``(D,)``, ``W`` ``(K, D)``,
    ``b`` ``(K,)``, ``T`` the normalised text features ``(K, D)`` of the
    classes (Tip-Adapter's template ensemble in the original) and ``α``
    ``(1, K)`` one multiplier per class. No logit scale.

    :meth:`fit` is the original's whole training
    (``methods/linear_probe_p2.py`` of
    FereshteShakeri/FewShot-CLIP-Strong-Baseline), full batch on the ``N``
    training features ``F`` of one augmented view:

    - ``W`` starts at the per-class SUM of the training features, ``b`` at
      ``nn.Linear(D, K)``'s random initialisation (drawn in :meth:`fit`, so
      that the same torch seed gives the original's bias), ``α`` at
      ``alpha_scale · mean_c mean_{i∈c} f_i·t_c`` for every class;
    - each epoch one SGD step on ``W`` and ``b`` (momentum 0.9, dampening
      0, no weight decay) with ``lr_w = 4N / λ_max(FᵀF)``;
    - every ``alpha_every``-th epoch ``α -= lr_α · ∇α`` with
      ``lr_α = N / (4 max_c Σ_i (f_i·t_c)²)``. In the original ``α`` is not
      in the optimizer and its gradient is never zeroed, so ``∇α`` is the
      SUM of the gradients of all epochs so far (``alpha_grad=
      'accumulated'``, the default); ``'current'`` takes the gradient of
      the current epoch only;
    - after each epoch's update, the accuracy on the validation features;
      the LAST epoch with the best accuracy (``>=``) is kept (without
      validation features, the last epoch).

    Everything is fitted in :meth:`fit` (the runner trains nothing more):
    ``weight``, ``bias`` and ``alpha`` are parameters without gradient,
    empty until then, and make the checkpoint.

    Args:
        epochs (int): Full-batch epochs. Defaults to 300 (the original's
            ``train_epoch``).
        alpha_every (int): Epochs between two steps of ``α``.
            Defaults to 10.
        alpha_scale (float): The scale of ``α``'s initial value.
            Defaults to 250.
        momentum (float): SGD momentum of ``W`` and ``b``. Defaults to 0.9.
        alpha_grad (str): ``'accumulated'`` (the original) or
            ``'current'``. Defaults to 'accumulated'.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmprompt.models.adapters import FeatureSet, LPPlusPlus
        >>> _ = torch.manual_seed(0)
        >>> text = F.normalize(torch.randn(3, 8), dim=-1)
        >>> feats, labels = torch.randn(1, 12, 8), torch.arange(3).repeat(4)
        >>> lpp = LPPlusPlus(epochs=20)
        >>> chosen = lpp.fit(FeatureSet(feats, labels, 'train'),
        ...                  FeatureSet(feats, labels, 'val'), text)
        >>> chosen['epoch']['split'], lpp(feats[0], text).shape
        ('val', torch.Size([12, 3]))
    """

    def __init__(self,
                 epochs: int = 300,
                 alpha_every: int = 10,
                 alpha_scale: float = 250.0,
                 momentum: float = 0.9,
                 alpha_grad: str = 'accumulated',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('epochs', epochs), ('alpha_every', alpha_every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'{name} must be a positive int, got {value!r}')
        if alpha_grad not in ALPHA_GRADS:
            raise ValueError(f'alpha_grad must be one of {ALPHA_GRADS}, '
                             f'got {alpha_grad!r}')
        self.epochs = epochs
        self.alpha_every = alpha_every
        self.alpha_scale = float(alpha_scale)
        self.momentum = float(momentum)
        self.alpha_grad = alpha_grad
        # Empty until fit(): (K, D), (K,), (1, K). Fitted, never trained by
        # the runner: parameters without gradient (the optimizer mmengine
        # builds for every config needs some).
        self.weight = nn.Parameter(torch.empty(0, 0), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(0), requires_grad=False)
        self.alpha = nn.Parameter(torch.empty(0, 0), requires_grad=False)

    @property
    def fitted(self) -> bool:
        return self.weight.numel() > 0

    @property
    def num_classes(self) -> Optional[int]:
        return self.weight.shape[0] if self.fitted else None

    @staticmethod
    def linear_text_logits(f: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor, alpha: torch.Tensor,
                           text: torch.Tensor) -> torch.Tensor:
        """``f Wᵀ + b + α ⊙ (f Tᵀ)`` of normalised ``f`` ``(B, D)``."""
        return f @ weight.t() + bias + alpha * (f @ text.t())

    def forward(self, features: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        """The logits ``(B, K)`` of raw features ``(B, D)`` (normalised
        here) and normalised text features ``(K, D)``."""
        if not self.fitted:
            raise RuntimeError('LPPlusPlus is not fitted: fit() it on '
                               'training features (tools/train.py does) or '
                               'load a checkpoint of a fitted LP++')
        if text.shape[0] != self.weight.shape[0]:
            raise ValueError(
                f'LP++ was fitted for {self.weight.shape[0]} classes and '
                f'{text.shape[0]} are to be scored: a linear probe scores '
                'its training classes only')
        f = F.normalize(features.to(self.weight.dtype), dim=-1)
        return self.linear_text_logits(f, self.weight, self.bias, self.alpha,
                                       text.to(f.dtype))

    @staticmethod
    def step_sizes(features: torch.Tensor,
                   text: torch.Tensor) -> Dict[str, float]:
        """The original's data-driven step sizes.

        Args:
            features (Tensor): ``(N, D)``, normalised.
            text (Tensor): ``(K, D)``, normalised.

        Returns:
            dict: ``lr_w = 4N / λ_max(FᵀF)`` and
            ``lr_alpha = N / (4 max_c Σ_i (f_i·t_c)²)``.
        """
        n = features.shape[0]
        eig_max = torch.linalg.eigvalsh(features.t() @ features).max()
        text_scores = features @ text.t()  # (N, K)
        return dict(
            lr_w=float(4 * n / eig_max),
            lr_alpha=float(n / (4 * text_scores.pow(2).sum(0).max())))

    def fit(self, train: FeatureSet, val: Optional[FeatureSet],
            text: torch.Tensor) -> Dict[str, Any]:
        """Train on the first view of ``train`` and select the epoch on
        ``val`` (its first view); what :meth:`fit_features` returns is kept
        in ``self.history``.

        Returns:
            dict: ``{'epoch': {'value', 'split'}, 'selection_accuracy':
            {...}}``: which split chose which epoch.
        """
        if val is not None:
            check_search_split(val.split, 'LP++ epoch selection')
        self.history = self.fit_features(
            train.features[0], train.labels, text,
            None if val is None else val.features[0],
            None if val is None else val.labels)
        selection = self.history['selection']
        split = None if val is None else val.split
        return dict(
            epoch=dict(value=selection['epoch'], split=split),
            selection_accuracy=dict(value=selection['accuracy'], split=split))

    def fit_features(self,
                     train_features: torch.Tensor,
                     train_labels: torch.Tensor,
                     text: torch.Tensor,
                     val_features: Optional[torch.Tensor] = None,
                     val_labels: Optional[torch.Tensor] = None) -> dict:
        """The original's training on feature tensors.

        Args:
            train_features (Tensor): ``(N, D)``, raw (normalised here).
            train_labels (Tensor): ``(N,)``, every class present.
            text (Tensor): ``(K, D)``, normalised.
            val_features (Tensor, optional): ``(M, D)``, raw: the features
                the epoch is selected on. None keeps the last epoch.
            val_labels (Tensor, optional): ``(M,)``.

        Returns:
            dict: ``lr_w``, ``lr_alpha``, ``alpha_init``, per-epoch
            ``loss`` and ``accuracy`` (in %, on ``val_features``), and
            ``selection`` (``epoch``, ``accuracy``).
        """
        num_classes, width = text.shape
        self._check(train_features, train_labels, num_classes, width, 'train')
        if (val_features is None) != (val_labels is None):
            raise ValueError('give both val_features and val_labels, or '
                             'neither')
        if val_features is not None:
            self._check(val_features, val_labels, num_classes, width, 'val')
            val_features = F.normalize(val_features.float(), dim=-1)
            val_labels = val_labels.to(val_features.device)
        f = F.normalize(train_features.float(), dim=-1)
        y = train_labels.to(f.device)
        text = text.to(f)
        missing = set(range(num_classes)) - set(y.tolist())
        if missing:
            raise ValueError(f'classes {sorted(missing)} have no training '
                             'feature: LP++ starts each class from its '
                             'features')

        text_scores = f @ text.t()  # (N, K)
        own = text_scores.gather(1, y[:, None])[:, 0]  # f_i · t_{y_i}
        per_class = torch.zeros(num_classes).to(f).index_add_(0, y, own)
        counts = torch.bincount(y, minlength=num_classes).to(f)
        alpha_init = self.alpha_scale * (per_class / counts).mean()
        sizes = self.step_sizes(f, text)
        # The original's nn.Linear: its weight (drawn first) is replaced by
        # the class sums, its bias is the initial b.
        linear = nn.Linear(width, num_classes).to(f)
        weight = nn.Parameter(
            torch.zeros_like(linear.weight).index_add_(0, y, f))
        bias = nn.Parameter(linear.bias.detach().clone())
        alpha = torch.full((1, num_classes), float(alpha_init)).to(f)
        alpha.requires_grad_()
        optimizer = torch.optim.SGD([weight, bias],
                                    lr=sizes['lr_w'],
                                    momentum=self.momentum)
        losses, accuracies = [], []
        best = (self.epochs - 1, None)
        state = None
        with torch.enable_grad():
            for epoch in range(self.epochs):
                loss = F.cross_entropy(
                    self.linear_text_logits(f, weight, bias, alpha, text), y)
                optimizer.zero_grad()
                if self.alpha_grad == 'current':
                    alpha.grad = None
                loss.backward()  # α's gradient accumulates (not optimised)
                optimizer.step()
                if (epoch + 1) % self.alpha_every == 0:
                    with torch.no_grad():
                        alpha -= sizes['lr_alpha'] * alpha.grad
                losses.append(loss.item())
                if val_features is None:
                    continue
                with torch.no_grad():
                    pred = self.linear_text_logits(val_features, weight, bias,
                                                   alpha, text).argmax(-1)
                acc = 100.0 * (pred == val_labels).double().mean().item()
                accuracies.append(acc)
                if best[1] is None or acc >= best[1]:  # the LAST best
                    best = (epoch, acc)
                    state = [t.detach().clone() for t in (weight, bias, alpha)]
        if state is None:
            state = [t.detach().clone() for t in (weight, bias, alpha)]
        # new parameters, as every adapter's fit (AdapterTrainLoop)
        self.weight, self.bias, self.alpha = (
            nn.Parameter(value, requires_grad=False) for value in state)
        return dict(
            lr_w=sizes['lr_w'],
            lr_alpha=sizes['lr_alpha'],
            alpha_init=float(alpha_init),
            loss=losses,
            accuracy=accuracies,
            selection=dict(epoch=best[0], accuracy=best[1]))

    @staticmethod
    def _check(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
               width: int, name: str) -> None:
        if features.dim() != 2 or features.shape[1] != width:
            raise ValueError(
                f'{name} features must be (N, {width}) as the text '
                f'features, got {tuple(features.shape)}')
        if labels.shape != features.shape[:1]:
            raise ValueError(f'{name} labels must be ({features.shape[0]},),'
                             f' got {tuple(labels.shape)}')
        if labels.numel() and (labels.min() < 0
                               or labels.max() >= num_classes):
            raise ValueError(
                f'{name} labels must be in [0, {num_classes}), got '
                f'{labels.min().item()}..{labels.max().item()}')

    def extra_repr(self) -> str:
        return (f'epochs={self.epochs}, alpha_every={self.alpha_every}, '
                f'alpha_grad={self.alpha_grad!r}')
