# Copyright (c) mmprompt contributors. All rights reserved.
"""Training-free and fine-tuned cache models
(`Tip-Adapter <https://arxiv.org/abs/2207.09519>`_)."""
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmprompt.registry import MODELS
from .base import BaseAdapter, FeatureSet, check_search_split, one_hot

__all__ = ['TipAdapter', 'tip_search_grid']

_PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16}


def tip_search_grid(maximum: float, steps: int) -> torch.Tensor:
    """The values Tip-Adapter's ``search_hp`` tries for one of α, β.

    ``0.1 + i · (maximum − 0.1) / steps`` for ``i < steps``, in float64
    as the original's Python floats: the maximum itself is never tried.

    Examples:
        >>> tip_search_grid(50, 20)[:3].tolist()
        [0.1, 2.595, 5.09]
    """
    return torch.tensor(
        [i * (maximum - 0.1) / steps + 0.1 for i in range(steps)],
        dtype=torch.float64)


@MODELS.register_module()
class TipAdapter(BaseAdapter):
    """Tip-Adapter and Tip-Adapter-F (`paper
    <https://arxiv.org/abs/2207.09519>`_, ``gaopengcuhk/Tip-Adapter``).

    A cache of the few-shot training set: keys ``F`` ``(NK, D)``, the
    L2-normalised mean of the raw CLIP features of ``V`` augmented views
    of each image, and values ``L`` ``(NK, C)``, their one-hot labels. For a
    normalised test feature ``f``::

        A      = exp(-β (1 - f Fᵀ))                    (B, NK)
        logits = 100 · f Wᵀ + α · A L                   (B, C)

    with ``W`` ``(C, D)`` the zero-shot text features. α and β are named
    as in the paper (α weighs the cache, β sharpens the affinity); the
    original code's ``alpha`` and ``beta`` (its ``init_alpha``,
    ``init_beta`` and ``search_scale = [β, α]``) mean the same (Tip-Adapter
    issue #4 reports an earlier version of the code with them swapped).
    Tip-Adapter-F (``finetune=True``) trains ``F`` with cross-entropy of
    these logits at the initial α, β; the values and the zero-shot weights
    stay frozen. After training (or right after the cache for the
    training-free method), α and β are chosen on a grid by accuracy on the
    validation (or training) features, never on test features
    (:func:`~mmprompt.models.adapters.check_search_split`).

    Args:
        alpha (float): α, the weight of the cache logits (the original's
            ``init_alpha``). Defaults to 1.0.
        beta (float): β, the sharpness of the affinity (``init_beta``).
            Defaults to 1.0.
        finetune (bool): Train the keys (Tip-Adapter-F). Defaults to False.
        search (dict, optional): The grid of α and β searched after
            training: ``dict(alpha_max, alpha_steps, beta_max, beta_steps)``
            (the original's ``search_scale = [beta_max, alpha_max]``,
            ``search_step = [beta_steps, alpha_steps]``); values
            :func:`tip_search_grid`. β is the outer loop and the first best
            point is kept (the smallest β, then α), as the original. None
            keeps ``alpha`` and ``beta``. Defaults to the original's
            OxfordFlowers/default grid, ``alpha_max=50, alpha_steps=20,
            beta_max=50, beta_steps=200``.
        logit_scale (float): The scale of the zero-shot logits: the original
            hard-codes 100 (not CLIP's learned scale). Defaults to 100.
        precision (str): ``'fp32'`` (default) or ``'fp16'``: keys, values
            and every logit in fp16, as the original on CUDA (its fp16
            CLIP): the keys an fp16 parameter under AdamW, whose decoupled
            weight decay then rounds away and whose second moment underflows
            for small gradients (docs: ``configs/tip_adapter/README.md``).
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmprompt.models.adapters import FeatureSet, TipAdapter
        >>> tip = TipAdapter(alpha=1., beta=5.5, search=None)
        >>> text = F.normalize(torch.randn(3, 8), dim=-1)
        >>> train = FeatureSet(torch.randn(10, 6, 8),
        ...                    torch.tensor([0, 0, 1, 1, 2, 2]), 'train')
        >>> tip.fit(train, None, text)
        {}
        >>> tip.cache_keys.shape, tip.cache_values.shape
        (torch.Size([6, 8]), torch.Size([6, 3]))
        >>> tip(torch.randn(4, 8), text).shape
        torch.Size([4, 3])
    """

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 1.0,
                 finetune: bool = False,
                 search: Optional[dict] = dict(
                     alpha_max=50.,
                     alpha_steps=20,
                     beta_max=50.,
                     beta_steps=200),
                 logit_scale: float = 100.,
                 precision: str = 'fp32',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if precision not in _PRECISIONS:
            raise ValueError(f'precision must be one of '
                             f'{tuple(_PRECISIONS)}, got {precision!r}')
        for name, value in (('alpha', alpha), ('beta', beta)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f'{name} must be a number >= 0, got {value!r}')
        if search is not None:
            search = dict(search)
            allowed = {'alpha_max', 'alpha_steps', 'beta_max', 'beta_steps'}
            if set(search) != allowed:
                raise ValueError(f'search must be None or a dict of exactly '
                                 f'{sorted(allowed)}, got {sorted(search)}')
            for key in ('alpha_steps', 'beta_steps'):
                if not isinstance(search[key], int) or search[key] < 1:
                    raise ValueError(f'search[{key!r}] must be an int >= 1, '
                                     f'got {search[key]!r}')
        self.alpha_init = float(alpha)
        self.beta_init = float(beta)
        self.finetune = finetune
        self.search_grid = search
        self.logit_scale = float(logit_scale)
        self.precision = precision
        dtype = _PRECISIONS[precision]
        # Empty until fit(): their size is the cache's (N·K entries).
        self.cache_keys = nn.Parameter(
            torch.empty(0, 0, dtype=dtype), requires_grad=finetune)
        self.register_buffer('cache_values', torch.empty(0, 0, dtype=dtype))
        # The α and β in use: the initial ones, then the searched ones.
        self.register_buffer('alpha',
                             torch.tensor(float(alpha), dtype=torch.float64))
        self.register_buffer('beta',
                             torch.tensor(float(beta), dtype=torch.float64))

    @property
    def dtype(self) -> torch.dtype:
        return _PRECISIONS[self.precision]

    @property
    def num_classes(self) -> Optional[int]:
        return self.cache_values.shape[1] if self.fitted else None

    @property
    def fitted(self) -> bool:
        return self.cache_keys.numel() > 0

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features ``(..., D)`` in the adapter's precision, normalised
        there (the original normalises its fp16 features in fp16)."""
        features = features.to(self.dtype)
        return features / features.norm(dim=-1, keepdim=True)

    @torch.no_grad()
    def fit(self, train: FeatureSet, val: Optional[FeatureSet],
            text: torch.Tensor) -> Dict[str, Any]:
        """Build the cache from every view of the training features.

        Keys: the mean of the ``V`` raw views, then normalised (not a mean
        of unit vectors), as the original's ``build_cache_model``; values:
        the one-hot labels of the ``K = text.shape[0]`` classes.
        """
        features = train.features.to(self.dtype)  # (V, N, D)
        keys = features.mean(0)
        keys = keys / keys.norm(dim=-1, keepdim=True)
        # A new parameter, not a resized one (see AdapterTrainLoop.fit).
        self.cache_keys = nn.Parameter(
            keys.contiguous(), requires_grad=self.finetune)
        self.cache_values = one_hot(train.labels, text.shape[0]).to(self.dtype)
        self.alpha.fill_(self.alpha_init)
        self.beta.fill_(self.beta_init)
        return {}

    def _check_fitted(self, text: torch.Tensor) -> None:
        if not self.fitted:
            raise RuntimeError(
                'TipAdapter has no cache: fit() it on training features '
                '(tools/train.py does, through AdapterTrainLoop) or load a '
                'checkpoint of a trained Tip-Adapter')
        if text.shape[0] != self.cache_values.shape[1]:
            raise ValueError(
                f'the cache was built for {self.cache_values.shape[1]} '
                f'classes and {text.shape[0]} are to be scored: '
                "Tip-Adapter's cache holds images of its training classes "
                'only and cannot score others (Tip-Adapter issue #10)')

    def affinity(self, f: torch.Tensor) -> torch.Tensor:
        """``f Fᵀ`` ``(B, NK)`` of normalised features (Tip-Adapter-F's
        ``adapter(f)``)."""
        return f @ self.cache_keys.t()

    def logits(self, f: torch.Tensor, text: torch.Tensor, alpha: float,
               beta: float) -> torch.Tensor:
        """Tip-Adapter's logits of normalised features ``f`` ``(B, D)``."""
        clip_logits = self.logit_scale * f @ text.to(self.dtype).t()
        return clip_logits + self.cache_logits(self.affinity(f), beta) * alpha

    def cache_logits(self, affinity: torch.Tensor,
                     beta: float) -> torch.Tensor:
        """``exp(-β(1 - A)) L`` ``(B, C)`` of the affinity ``A``
        ``(B, NK)``, written as the original computes it."""
        return ((-1) * (beta - beta * affinity)).exp() @ self.cache_values

    def forward(self, features: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of raw features ``(B, D)`` at the current α,
        β, in the adapter's precision."""
        self._check_fitted(text)
        return self.logits(
            self.normalize(features), text, float(self.alpha),
            float(self.beta))

    def loss(self, features: torch.Tensor, labels: torch.Tensor,
             text: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Tip-Adapter-F's loss: cross-entropy of the logits at the
        INITIAL α, β (the searched ones are for inference), computed in the
        adapter's precision (fp16 for ``precision='fp16'``, as the
        original)."""
        self._check_fitted(text)
        logits = self.logits(
            self.normalize(features), text, self.alpha_init, self.beta_init)
        return dict(loss=F.cross_entropy(logits, labels))

    @torch.no_grad()
    def search_accuracy(self, data: FeatureSet,
                        text: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The accuracy of every (β, α) of the grid on ``data`` (its first
        view).

        Returns:
            dict: ``beta_list`` ``(Sβ, )``, ``alpha_list`` ``(Sα, )``
            (float64) and ``correct`` ``(Sβ, Sα)``, the number of correct
            predictions.
        """
        grid = self.search_grid
        betas = tip_search_grid(grid['beta_max'], grid['beta_steps'])
        alphas = tip_search_grid(grid['alpha_max'], grid['alpha_steps'])
        f = self.normalize(data.features[0])
        labels = data.labels.to(f.device)
        clip_logits = self.logit_scale * f @ text.to(self.dtype).t()
        affinity = self.affinity(f)
        correct = torch.zeros(len(betas), len(alphas), dtype=torch.long)
        for i, beta in enumerate(betas.tolist()):
            cache_logits = self.cache_logits(affinity, beta)
            for j, alpha in enumerate(alphas.tolist()):
                pred = (clip_logits + cache_logits * alpha).topk(1)[1][:, 0]
                correct[i, j] = (pred == labels).sum()
        return dict(beta_list=betas, alpha_list=alphas, correct=correct)

    @torch.no_grad()
    def search(self, data: FeatureSet, text: torch.Tensor) -> Dict[str, Any]:
        """Choose α and β on ``data`` (the original's ``search_hp``): the
        first best point of the grid, β the outer loop."""
        check_search_split(data.split, 'alpha/beta search')
        if self.search_grid is None:
            return {}
        self._check_fitted(text)
        result = self.search_accuracy(data, text)
        correct = result['correct']
        best = int(torch.argmax(correct.reshape(-1)))  # the first maximum
        i, j = divmod(best, correct.shape[1])
        beta = float(result['beta_list'][i])
        alpha = float(result['alpha_list'][j])
        self.alpha.fill_(alpha)
        self.beta.fill_(beta)
        accuracy = 100. * float(correct[i, j]) / len(data.labels)
        return dict(
            alpha=dict(value=alpha, split=data.split),
            beta=dict(value=beta, split=data.split),
            search_accuracy=dict(value=accuracy, split=data.split))
