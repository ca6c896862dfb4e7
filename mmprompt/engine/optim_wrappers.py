# Copyright (c) mmprompt contributors. All rights reserved.
"""ProGrad's update as mmengine optimizer wrappers.

ProGrad (`Prompt-aligned Gradient <https://arxiv.org/abs/2205.14865>`_)
trains on two losses without summing them: the cross-entropy ``loss_ce``
and the distillation ``loss_kl`` to zero-shot CLIP. Per parameter tensor,
where the two gradients conflict, the cross-entropy gradient is projected
onto the normal plane of the KL gradient (:func:`prograd_project`); the
optimizer (SGD with weight decay and momentum) then steps on it.

The original does this in a forked Dassl trainer
(``Dassl.ProGrad.pytorch``, ``TrainerBase.prograd_backward_and_update``)
with two ``backward`` passes. Here it is the wrapper's ``update_params``,
which mmengine's ``train_step`` calls with what the model's
``parse_losses`` returns: for ``ProGradHead`` both terms
(``PromptClassifier.parse_losses``). So ``tools/train.py`` trains ProGrad
as any model; ``--amp`` selects :class:`ProGradAmpOptimWrapper`.

**DDP.** The original runs ``nn.DataParallel``, one process: the projection
acts on the gradients of the whole batch. Here each gradient is averaged
over the processes before the projection (the projection is not linear, so
projecting per process and averaging after would differ), so that
``N`` processes equal one at the same global batch. DDP's reducer would
average one backward pass and clash with two on one forward, so the forward
runs under the DDP module's ``no_sync()`` (:meth:`optim_context`), both
gradients are taken with ``torch.autograd.grad`` and averaged here, in one
all-reduce.
"""
import contextlib
import math
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.dist import all_reduce
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmprompt.registry import OPTIM_WRAPPERS

__all__ = [
    'prograd_project', 'ProGradOptimWrapper', 'ProGradAmpOptimWrapper',
    'AMP_OPTIM_WRAPPERS'
]

#: The mixed-precision wrapper of each wrapper (``tools/train.py --amp``).
AMP_OPTIM_WRAPPERS = {
    'OptimWrapper': 'AmpOptimWrapper',
    'ProGradOptimWrapper': 'ProGradAmpOptimWrapper',
}

#: The loss terms the update needs: the one whose gradient is applied and
#: the one whose gradient it must not oppose.
CE, KL = 'loss_ce', 'loss_kl'


def prograd_project(g_ce: torch.Tensor,
                    g_kl: torch.Tensor,
                    lambda_: float = 1.0) -> Tuple[torch.Tensor, float, bool]:
    """ProGrad's rule for one parameter tensor.

    With ``u = g_kl / ‖g_kl‖`` (over the whole flattened tensor): if
    ``⟨g_ce, u⟩ < 0`` (strictly; the gradients conflict), the gradient is
    ``g_ce − λ·⟨g_ce, u⟩·u``, else ``g_ce``.

    Args:
        g_ce (Tensor): Gradient of the cross-entropy.
        g_kl (Tensor): Gradient of the distillation loss, same shape.
        lambda_ (float): λ, how much of the conflicting component is
            removed (1: all of it). Defaults to 1.

    Returns:
        tuple[Tensor, float, bool]: The gradient to apply, the cosine of
        ``g_ce`` and ``g_kl`` (NaN where either is zero) and whether it was
        projected.

    Examples:
        >>> import torch
        >>> g, cos, projected = prograd_project(
        ...     torch.tensor([1., -1.]), torch.tensor([0., 1.]))
        >>> g, round(cos, 4), projected
        (tensor([1., 0.]), -0.7071, True)
    """
    kl_norm = torch.linalg.vector_norm(g_kl)
    ce_norm = torch.linalg.vector_norm(g_ce)
    dot = torch.dot(g_ce.flatten(), g_kl.flatten())
    cos = float(dot / (ce_norm * kl_norm))
    if not kl_norm > 0:
        # No direction to keep away from (the original divides by zero and
        # keeps g_ce, the NaN comparing false).
        return g_ce, cos, False
    u = g_kl / kl_norm
    along = torch.dot(g_ce.flatten(), u.flatten())
    if along < 0:
        return g_ce - lambda_ * along * u, cos, True
    return g_ce, cos, False


class _ProGradUpdate:
    """What both ProGrad wrappers add to their mmengine base (see the
    module docstring)."""

    def __init__(self, lambda_: float = 1.0, **kwargs) -> None:
        if isinstance(
                lambda_,
                bool) or not isinstance(lambda_,
                                        (int, float)) or not 0 <= lambda_ <= 1:
            raise ValueError(
                'lambda_ (ProGrad\'s λ, the share of the conflicting '
                f'gradient component removed) must be in [0, 1], got '
                f'{lambda_!r}')
        super().__init__(**kwargs)
        self.lambda_ = float(lambda_)
        # Accumulated gradients of both terms, until the update.
        self._sums: Optional[Dict[str, List[torch.Tensor]]] = None
        #: ``(cos, projected)`` of each parameter tensor at the last update.
        self.last_projection: List[Tuple[float, bool]] = []

    #: Whether a non-finite KL gradient is added to the applied one.
    _overflow_reaches_scaler = False

    def _params(self) -> List[nn.Parameter]:
        return [
            p for group in self.optimizer.param_groups for p in group['params']
            if p.requires_grad
        ]

    def _scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss as back-propagated (the AMP wrapper scales it)."""
        return loss

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module):
        """The base's context, with DDP's reducer kept out: the wrapper
        takes both gradients and averages them itself."""
        no_sync = getattr(model, 'no_sync', None)
        with (no_sync() if no_sync is not None else contextlib.nullcontext()):
            with super().optim_context(model):
                yield

    def _terms(self, loss) -> Tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(loss, Mapping) or CE not in loss or KL not in loss:
            raise TypeError(
                f'{type(self).__name__} projects the gradient of {CE!r} '
                f'away from that of {KL!r}, so it needs both terms, got '
                f'{type(loss).__name__}'
                f'{sorted(loss) if isinstance(loss, Mapping) else ""}: use '
                "it with model.head=dict(type='ProGradHead', ...), whose "
                'terms PromptClassifier.parse_losses passes on')
        return loss[CE], loss[KL]

    def _gradients(self, loss: torch.Tensor, params: List[nn.Parameter],
                   retain_graph: bool) -> List[torch.Tensor]:
        grads = torch.autograd.grad(
            self._scale(loss),
            params,
            retain_graph=retain_graph,
            allow_unused=True)
        return [
            torch.zeros_like(p) if g is None else g
            for p, g in zip(params, grads)
        ]

    def update_params(self,
                      loss: Mapping[str, torch.Tensor],
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """Both gradients, averaged over processes, projected, then the
        optimizer's step (every ``accumulative_counts`` calls; the
        gradients of the calls in between are summed per term first).

        Args:
            loss (Mapping[str, Tensor]): ``loss_ce`` and ``loss_kl``.
            step_kwargs (dict, optional): For the optimizer's ``step``.
            zero_kwargs (dict, optional): For ``zero_grad``.
        """
        ce, kl = self._terms(loss)
        # As mmengine divides the loss under gradient accumulation.
        ce, kl = self.scale_loss(ce), self.scale_loss(kl)
        params = self._params()
        # The original's order: KL first, keeping the graph for the CE.
        g_kl = self._gradients(kl, params, retain_graph=True)
        g_ce = self._gradients(ce, params, retain_graph=False)
        if self._sums is None:
            self._sums = dict(ce=g_ce, kl=g_kl)
        else:
            for total, new in ((self._sums['ce'], g_ce), (self._sums['kl'],
                                                          g_kl)):
                for t, g in zip(total, new):
                    t.add_(g)
        self._inner_count += 1
        if self.should_update():
            self._apply(params)
            self.step(**(step_kwargs or {}))
            self.zero_grad(**(zero_kwargs or {}))

    def _apply(self, params: List[nn.Parameter]) -> None:
        g_ce, g_kl = self._average(self._sums['ce'], self._sums['kl'])
        self._sums = None
        self.last_projection = []
        for p, ce, kl in zip(params, g_ce, g_kl):
            grad, cos, projected = prograd_project(ce, kl, self.lambda_)
            if self._overflow_reaches_scaler and not bool(
                    torch.isfinite(kl).all()):
                # An overflow in the KL gradient alone (mixed precision)
                # must reach the loss scaler, which checks p.grad only.
                grad = grad + kl
            p.grad = grad
            self.last_projection.append((cos, projected))
        cosines = [c for c, _ in self.last_projection if not math.isnan(c)]
        if cosines:
            self.message_hub.update_scalar('train/prograd_cos',
                                           sum(cosines) / len(cosines))
        self.message_hub.update_scalar(
            'train/prograd_projected',
            sum(p for _, p in self.last_projection) /
            max(len(self.last_projection), 1))

    @staticmethod
    def _average(g_ce: List[torch.Tensor],
                 g_kl: List[torch.Tensor]) -> Tuple[list, list]:
        """Both gradients averaged over the processes, in one all-reduce
        (nothing to do in one process)."""
        grads = g_ce + g_kl
        flat = torch.cat([g.reshape(-1) for g in grads])
        all_reduce(flat, op='mean')
        out, start = [], 0
        for g in grads:
            out.append(flat[start:start + g.numel()].view_as(g))
            start += g.numel()
        return out[:len(g_ce)], out[len(g_ce):]

    def backward(self, loss, **kwargs) -> None:
        raise TypeError(
            f'{type(self).__name__} takes the gradients of both ProGrad '
            'losses itself: call update_params({"loss_ce": ..., "loss_kl": '
            '...}), as the runner does, not backward()')


@OPTIM_WRAPPERS.register_module()
class ProGradOptimWrapper(_ProGradUpdate, OptimWrapper):
    """mmengine's ``OptimWrapper`` with ProGrad's gradient projection.

    ``update_params({'loss_ce': ..., 'loss_kl': ...})`` takes the gradient
    of each term (``torch.autograd.grad``, the KL first), averages both over
    the processes, sets each parameter's gradient to
    :func:`prograd_project` of them and steps the optimizer: weight decay
    and momentum act after the projection, as in the original.

    Args:
        lambda_ (float): ProGrad's λ (``LOSS.LAMBDA``): 1 removes the whole
            conflicting component; the original's README uses 0.8 for
            Flowers102, DTD and EuroSAT at 8 and 16 shots. Defaults to 1.
        **kwargs: The arguments of ``OptimWrapper`` (``optimizer``,
            ``accumulative_counts``, ``clip_grad``).

    Examples:
        >>> import torch
        >>> ctx = torch.nn.Parameter(torch.zeros(2))
        >>> wrapper = ProGradOptimWrapper(
        ...     optimizer=torch.optim.SGD([ctx], lr=1.0))
        >>> wrapper.update_params(dict(
        ...     loss_ce=ctx[1] - ctx[0],  # g_ce = (-1, 1)
        ...     loss_kl=-ctx[1]))         # g_kl = (0, -1): they conflict
        >>> ctx.data  # stepped on g_ce without its part along g_kl, (-1, 0)
        tensor([1., 0.])
        >>> wrapper.last_projection
        [(-0.7071067690849304, True)]
    """


@OPTIM_WRAPPERS.register_module()
class ProGradAmpOptimWrapper(_ProGradUpdate, AmpOptimWrapper):
    """:class:`ProGradOptimWrapper` with mmengine's mixed precision
    (``AmpOptimWrapper``: autocast and a dynamic loss scale), what
    ``tools/train.py --amp`` uses for ProGrad.

    Both losses are scaled by the same factor; the projection is linear in
    ``g_ce`` and does not depend on the length of ``g_kl``, so projecting
    the scaled gradients gives the scaled projected gradient, which the
    scaler unscales (and skips the step on an overflow, in either gradient)
    as for one loss.

    Args:
        lambda_ (float): ProGrad's λ. Defaults to 1.
        **kwargs: The arguments of ``AmpOptimWrapper`` (``loss_scale``,
            ``dtype``) and ``OptimWrapper``.
    """

    _overflow_reaches_scaler = True

    def _scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.loss_scaler.scale(loss)
