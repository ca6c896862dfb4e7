# Copyright (c) mmprompt contributors. All rights reserved.
"""The CoOp paper's linear probe (``lpclip``): scikit-learn's L-BFGS
logistic regression on CLIP's image features, its C searched on the
validation features."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from mmprompt.registry import MODELS
from .base import BaseAdapter, FeatureSet, check_search_split

__all__ = [
    'COARSE_C', 'LPCLIP_VAL_SHOTS', 'LogisticRegressionProbe',
    'import_sklearn', 'lpclip_fewshot_indices'
]

#: The coarse grid of C, searched in this order; the FIRST best is kept
#: (the largest C among ties).
COARSE_C = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)

#: Validation images per class that lpclip draws for K training shots.
LPCLIP_VAL_SHOTS = {1: 1, 2: 2, 4: 4, 8: 4, 16: 4}

SKLEARN_INSTALL = ('pip install "mmprompt[lpclip]" '
                   '(or pip install scikit-learn)')


def import_sklearn():
    """``sklearn.linear_model.LogisticRegression``, or an ImportError that
    names the package and the install command."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:
        raise ImportError(
            'the CoOp linear probe (LogisticRegressionProbe, lpclip) needs '
            f'scikit-learn, which is not installed: {SKLEARN_INSTALL}') from e
    return LogisticRegression


def lpclip_fewshot_indices(labels: Sequence[int],
                           shots: int,
                           seed: Optional[int] = None) -> np.ndarray:
    """lpclip's own few-shot draw: per class in sorted label order,
    ``np.random.choice(that class's indices, shots, replace=False)``.

    The original seeds numpy once (``np.random.seed(seed)``) and then draws
    the training shots of every class, then the validation shots
    (:data:`LPCLIP_VAL_SHOTS`) from the validation split: call this twice
    in that order, the second time with ``seed=None``.

    Args:
        labels (Sequence[int]): The labels of the split, in its order.
        shots (int): Indices per class.
        seed (int, optional): Seeds numpy's global generator first.

    Returns:
        np.ndarray: The indices into the split, class by class.
    """
    labels = np.asarray(labels)
    if seed is not None:
        np.random.seed(seed)
    picked = []
    for label in np.unique(labels):
        members = np.where(labels == label)[0]
        if len(members) < shots:
            raise ValueError(f'class {label} has {len(members)} images, '
                             f'fewer than shots={shots}')
        picked.extend(np.random.choice(members, shots, replace=False))
    return np.asarray(picked, dtype=np.int64)


@MODELS.register_module()
class LogisticRegressionProbe(BaseAdapter):
    """The linear probe of `CoOp <https://arxiv.org/abs/2109.01134>`_'s
    ``lpclip`` (after CLIP's Appendix A3): multinomial logistic regression
    fitted by scikit-learn's L-BFGS on the unnormalised image features,
    with its inverse regularisation C searched on the validation features.

    The search (:meth:`fit`), as ``lpclip/linear_probe.py``:

    1. fit at every C of :data:`COARSE_C` and keep the first with the best
       validation accuracy, ``C*``;
    2. ``search_steps`` times: fit at ``C_left`` and ``C_right`` (first
       ``C*/10`` and ``10·C*``); the better (ties go left) is the step's
       classifier; the next interval keeps that end and moves the other to
       the midpoint in log10. One end is refitted every step, and the
       result may leave the coarse range.

    The last step's classifier is kept: ``weight`` ``(K, D)`` and ``bias``
    ``(K,)`` (sklearn's ``coef_`` and ``intercept_``, float64, without
    gradient, empty until :meth:`fit`, then in the checkpoint) and ``C``;
    the logits are ``f Wᵀ + b`` (sklearn's ``decision_function``; their
    softmax is ``predict_proba``). The text features are not used.

    C is chosen on the validation features only (the loop's val split;
    ``'test'`` is refused by :func:`check_search_split`), and what chose
    what is returned by :meth:`fit` (logged, ``adapter_choices.json``) and
    kept in ``self.search_record``.

    scikit-learn is an optional dependency of this method only
    (``pip install "mmprompt[lpclip]"``). Its objective is the mean
    cross-entropy plus ``||W||² / (2 C n)`` (the intercept unpenalised)
    since 1.1 (the sum before), and where its fits stop decides the chosen
    C: the numbers depend on the version (``configs/lpclip/README.md``).

    Args:
        search_steps (int): The binary-search steps after the coarse grid
            (``--num_step``). Defaults to 8.
        max_iter (int): L-BFGS iterations per fit. Defaults to 1000.
        coarse_c (Sequence[float]): The coarse grid, searched in order.
            Defaults to :data:`COARSE_C`.
        search_split (str): The features C is chosen on: ``'val'`` (the
            loop's validation set, the original's) or ``'train'`` (the
            training features themselves, for data without a held-out
            split, e.g. CoOp's ImageNet, whose val split is its test set).
            Defaults to 'val'.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.models.adapters import (FeatureSet,
        ...                                       LogisticRegressionProbe)
        >>> _ = torch.manual_seed(0)
        >>> feats, labels = torch.randn(1, 20, 8), torch.arange(4).repeat(5)
        >>> probe = LogisticRegressionProbe(search_steps=2)
        >>> chosen = probe.fit(FeatureSet(feats, labels, 'train'),
        ...                    FeatureSet(feats, labels, 'val'), None)
        >>> chosen['C']['split'], probe(feats[0], None).shape
        ('val', torch.Size([20, 4]))
    """

    def __init__(self,
                 search_steps: int = 8,
                 max_iter: int = 1000,
                 coarse_c: Sequence[float] = COARSE_C,
                 search_split: str = 'val',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.search_split = check_search_split(search_split,
                                               'C search (search_split)')
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(
                f'max_iter must be a positive int, got {max_iter!r}')
        if not isinstance(search_steps, int) or search_steps < 0:
            raise ValueError('search_steps must be an int >= 0, got '
                             f'{search_steps!r}')
        coarse_c = tuple(float(c) for c in coarse_c)
        if not coarse_c or any(not c > 0 for c in coarse_c):
            raise ValueError('coarse_c must be a non-empty list of C > 0, '
                             f'got {coarse_c!r}')
        self.search_steps = search_steps
        self.max_iter = max_iter
        self.coarse_c = coarse_c
        # Empty until fit(): (K, D), (K,). Fitted, never trained by the
        # runner: parameters without gradient (the optimizer mmengine
        # builds for every config needs some).
        self.weight = nn.Parameter(
            torch.empty(0, 0, dtype=torch.float64), requires_grad=False)
        self.bias = nn.Parameter(
            torch.empty(0, dtype=torch.float64), requires_grad=False)
        self.register_buffer('C',
                             torch.tensor(float('nan'), dtype=torch.float64))
        self.search_record: Optional[dict] = None

    @property
    def fitted(self) -> bool:
        return self.weight.numel() > 0

    @property
    def num_classes(self) -> Optional[int]:
        return self.weight.shape[0] if self.fitted else None

    def forward(self,
                features: torch.Tensor,
                text: Optional[torch.Tensor] = None) -> torch.Tensor:
        """sklearn's ``decision_function``: ``f Wᵀ + b``, float64.

        Args:
            features (Tensor): ``(B, D)``, raw (unnormalised).
            text (Tensor, optional): The classes' text features, only to
                check that the probe scores as many classes.

        Returns:
            Tensor: ``(B, K)``, float64.
        """
        if not self.fitted:
            raise RuntimeError(
                'LogisticRegressionProbe is not fitted: fit() it on '
                'training features (tools/train.py does) or load a '
                'checkpoint of a fitted probe')
        if text is not None and text.shape[0] != self.weight.shape[0]:
            raise ValueError(
                f'the probe was fitted for {self.weight.shape[0]} classes '
                f'and {text.shape[0]} are to be scored: a linear probe '
                'scores its training classes only')
        return features.to(self.weight.dtype) @ self.weight.t() + self.bias

    def fit(self, train: FeatureSet, val: Optional[FeatureSet],
            text: Optional[torch.Tensor]) -> Dict[str, Any]:
        """Fit on the first view of ``train`` (the original extracts it
        with the test transform), C searched on the first view of ``val``,
        or of ``train`` with ``search_split='train'``.

        Returns:
            dict: ``{'C': {'value', 'split'}, 'search_accuracy': {...}}``.
        """
        if self.search_split == 'train':
            val = train
        elif val is None:
            raise ValueError(
                "the linear probe's C is searched on validation features and "
                'there are none: give the config a val_dataloader of the '
                "val split, or LogisticRegressionProbe(search_split='train')"
                ' to choose C on the training features')
        num_classes = None if text is None else text.shape[0]
        record = self.fit_features(train.features[0], train.labels,
                                   val.features[0], val.labels, val.split,
                                   num_classes)
        return dict(
            C=dict(value=record['C'], split=record['split']),
            search_accuracy=dict(
                value=record['val_accuracy'], split=record['split']))

    def _fit_one(self, c: float, x: np.ndarray, y: np.ndarray):
        logistic_regression = import_sklearn()
        # penalty='l2' is sklearn's default; naming it is deprecated (1.8)
        model = logistic_regression(
            C=c, solver='lbfgs', max_iter=self.max_iter)
        model.fit(x, y)
        return model

    def fit_features(self,
                     train_features: torch.Tensor,
                     train_labels: torch.Tensor,
                     val_features: torch.Tensor,
                     val_labels: torch.Tensor,
                     select_on: str = 'val',
                     num_classes: Optional[int] = None) -> dict:
        """The search on feature tensors; keeps the last step's fit.

        Args:
            train_features (Tensor): ``(N, D)``, raw.
            train_labels (Tensor): ``(N,)``, every class present.
            val_features (Tensor): ``(M, D)``: the features C is chosen on.
            val_labels (Tensor): ``(M,)``.
            select_on (str): The split ``val_features`` come from,
                ``'val'`` or ``'train'``; ``'test'`` is refused.
                Defaults to 'val'.
            num_classes (int, optional): ``K``; the largest label + 1 by
                default.

        Returns:
            dict: ``split`` (which split chose C), ``C``, ``coarse``
            (``[C, accuracy, n_iter]`` per fit), ``steps`` (``C_left``,
            ``C_right``, their accuracies, ``chosen``, ``C`` per step) and
            ``val_accuracy`` (of the kept fit), accuracies in %.
        """
        check_search_split(select_on, 'C search')
        import_sklearn()
        if num_classes is None:
            num_classes = int(train_labels.max()) + 1
        width = train_features.shape[-1]
        x, y = self._numpy(train_features, train_labels, num_classes, width,
                           'train')
        xv, yv = self._numpy(val_features, val_labels, num_classes, width,
                             select_on)
        missing = set(range(num_classes)) - set(y.tolist())
        if missing:
            raise ValueError(f'classes {sorted(missing)} have no training '
                             'feature: the probe would never predict them')

        def accuracy(model) -> float:
            return 100.0 * float(np.mean(model.predict(xv) == yv))

        coarse: List[list] = []
        best: Optional[Tuple[float, float]] = None
        for c in self.coarse_c:
            model = self._fit_one(c, x, y)
            acc = accuracy(model)
            coarse.append([c, acc, int(np.max(model.n_iter_))])
            if best is None or acc > best[1]:  # the FIRST best
                best = (c, acc)
                kept, kept_acc = model, acc
        c_final = best[0]
        steps: List[Dict] = []
        left, right = 0.1 * best[0], 10 * best[0]
        for _ in range(self.search_steps):
            model_left, model_right = (self._fit_one(left, x, y),
                                       self._fit_one(right, x, y))
            acc_left, acc_right = accuracy(model_left), accuracy(model_right)
            # the original goes through log10 and back at each end
            middle = np.power(10, 0.5 * (np.log10(left) + np.log10(right)))
            step = dict(
                C_left=float(left),
                C_right=float(right),
                acc_left=acc_left,
                acc_right=acc_right)
            if acc_left >= acc_right:  # ties go left
                c_final, kept, kept_acc = left, model_left, acc_left
                step['chosen'] = 'left'
                left, right = np.power(10, np.log10(left)), middle
            else:
                c_final, kept, kept_acc = right, model_right, acc_right
                step['chosen'] = 'right'
                left, right = middle, np.power(10, np.log10(right))
            step['C'] = float(c_final)
            steps.append(step)
        self._keep(kept, c_final, num_classes, width)
        self.search_record = dict(
            split=select_on,
            C=float(c_final),
            coarse=coarse,
            steps=steps,
            val_accuracy=kept_acc)
        return self.search_record

    def _keep(self, model, c: float, num_classes: int, width: int) -> None:
        classes = torch.as_tensor(np.asarray(model.classes_))
        coef = torch.as_tensor(np.asarray(model.coef_, dtype=np.float64))
        intercept = torch.as_tensor(
            np.asarray(model.intercept_, dtype=np.float64))
        if len(classes) == 2:
            # sklearn's binary model scores class 1 against class 0
            coef = torch.cat([torch.zeros_like(coef), coef])
            intercept = torch.cat([torch.zeros_like(intercept), intercept])
        weight = torch.zeros(num_classes, width, dtype=torch.float64)
        bias = torch.zeros(num_classes, dtype=torch.float64)
        weight[classes] = coef
        bias[classes] = intercept
        device = self.weight.device
        # new parameters, as every adapter's fit (AdapterTrainLoop)
        self.weight = nn.Parameter(weight.to(device), requires_grad=False)
        self.bias = nn.Parameter(bias.to(device), requires_grad=False)
        self.C.fill_(c)

    @staticmethod
    def _numpy(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
               width: int, name: str) -> Tuple[np.ndarray, np.ndarray]:
        if features.dim() != 2 or features.shape[1] != width:
            raise ValueError(f'{name} features must be (N, {width}), got '
                             f'{tuple(features.shape)}')
        if labels.shape != features.shape[:1]:
            raise ValueError(f'{name} labels must be ({features.shape[0]},),'
                             f' got {tuple(labels.shape)}')
        y = labels.detach().cpu().numpy().astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f'{name} labels must be in [0, {num_classes}), '
                             f'got {y.min()}..{y.max()}')
        # the original hands sklearn float64 features (np.load of its npz)
        return features.detach().cpu().double().numpy(), y

    def extra_repr(self) -> str:
        return (f'search_steps={self.search_steps}, '
                f'max_iter={self.max_iter}, '
                f'search_split={self.search_split!r}, C={self.C.item():g}')
