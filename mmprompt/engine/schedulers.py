# Copyright (c) mmprompt contributors. All rights reserved.
"""The learning-rate schedule of the original CoOp / CoCoOp (and of the
methods built on Dassl, KgCoOp's past bug included)."""
import math
from typing import List, Optional

from mmengine.optim import _ParamScheduler
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF

from mmprompt.registry import PARAM_SCHEDULERS

#: Schedules that an original ran by mistake, for ``original_bug`` of
#: :class:`ConstantWarmupCosineLR`: KgCoOp before commit 98d11b8
#: (htyao89/KgCoOp issue #2) stepped a second cosine scheduler on the same
#: optimizer every epoch, so the cosine factor applied twice, from the lr
#: the second scheduler started at: the warm-up lr under current torch
#: (what a user gets today), the base lr under torch 1.x (what the authors
#: ran, presumably).
ORIGINAL_BUGS = ('kgcoop_before_98d11b8', 'kgcoop_before_98d11b8_torch1x')


@PARAM_SCHEDULERS.register_module()
class ConstantWarmupCosineLR(LRSchedulerMixin, _ParamScheduler):
    """Constant warm-up at a fixed lr, then cosine annealing (Dassl's).

    The original builds ``CosineAnnealingLR(T_max=max_epoch)`` inside a
    ``ConstantWarmupScheduler(warmup_epoch=1, cons_lr=1e-5)`` with the cosine
    counter restarted after warm-up, and steps it once per epoch. In step
    (epoch) ``e``:

    .. math::

        lr_e = \\begin{cases} warmup\\_lr & e < W \\\\
        \\eta_{min} + (base\\_lr - \\eta_{min})\\,
        \\tfrac{1}{2}\\bigl(1 + \\cos(\\pi (e - W) / T_{max})\\bigr)
        & e \\ge W \\end{cases}

    with ``W = warmup_epochs``. ``original_bug`` replays a schedule that an
    original ran by mistake (:data:`ORIGINAL_BUGS`), for reproducing the
    numbers it published or a user's run of it: for KgCoOp before commit
    98d11b8 the cosine factor ``c(t) = (1 + cos(pi t / T_max)) / 2``
    applied twice,

    .. math::

        lr_e = start \\cdot c(e - W)^2 \\quad (e \\ge W)

    from ``start = warmup_lr`` (``'kgcoop_before_98d11b8'``, current torch:
    the lr never exceeds the warm-up lr) or ``start = base_lr``
    (``'kgcoop_before_98d11b8_torch1x'``, torch 1.x's CosineAnnealingLR,
    whose first value was the base lr: the log of KgCoOp issue #2).
    The value is computed in closed form from the
    step index, so it is exact and resuming from a state dict continues the
    same trajectory. Note that the last epoch (``e = T_max``, with ``W = 1``
    and ``T_max`` epochs in all) ends at a small non-zero lr: mmengine's
    ``CosineAnnealingLR`` with default ``begin``/``end`` does not give this.

    Args:
        optimizer (Optimizer or OptimWrapper): The wrapped optimizer.
        T_max (int): The cosine's period in steps: the original's
            ``MAX_EPOCH``, i.e. the total number of epochs.
        warmup_lr (float): The lr of the warm-up steps (an absolute value,
            not a factor). Defaults to 1e-5.
        warmup_epochs (int): Number of warm-up steps. Defaults to 1.
        eta_min (float): The cosine's minimum. Defaults to 0.
        begin (int): Step at which the schedule starts. Defaults to 0.
        end (int): Step at which it stops. Defaults to INF.
        last_step (int): The index of the last step, for resuming without a
            state dict. Defaults to -1.
        by_epoch (bool): Whether steps are epochs. Only per-epoch stepping
            reproduces the original. Defaults to True.
        verbose (bool): Whether to log every update. Defaults to False.
        original_bug (str, optional): One of :data:`ORIGINAL_BUGS`, to replay
            that schedule (needs ``eta_min=0``, as the originals had).
            Defaults to None: the schedule as intended.

    Examples:
        >>> import torch
        >>> from mmprompt.engine import ConstantWarmupCosineLR
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
        ...                       lr=0.002)
        >>> sched = ConstantWarmupCosineLR(opt, T_max=10)
        >>> lrs = []
        >>> for epoch in range(3):
        ...     lrs.append(opt.param_groups[0]['lr'])
        ...     opt.step()
        ...     sched.step()
        >>> [round(lr, 6) for lr in lrs]
        [1e-05, 0.002, 0.001951]
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
        ...                       lr=0.002)
        >>> sched = ConstantWarmupCosineLR(
        ...     opt, T_max=10, original_bug='kgcoop_before_98d11b8_torch1x')
        >>> [sched.lr_at(e, 0.002) for e in (0, 1, 6)]
        [1e-05, 0.002, 0.0005]
    """

    def __init__(self,
                 optimizer,
                 T_max: int,
                 warmup_lr: float = 1e-5,
                 warmup_epochs: int = 1,
                 eta_min: float = 0.,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False,
                 original_bug: Optional[str] = None) -> None:
        if not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f'T_max must be an int >= 1 (the number of '
                             f'epochs), got {T_max!r}')
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f'warmup_epochs must be an int >= 0, got '
                             f'{warmup_epochs!r}')
        if original_bug is not None and original_bug not in ORIGINAL_BUGS:
            raise ValueError(f'original_bug must be None or one of '
                             f'{ORIGINAL_BUGS}, got {original_bug!r}')
        if original_bug is not None and eta_min != 0:
            raise ValueError(
                f'original_bug={original_bug!r} replays a schedule with '
                f'eta_min=0, got eta_min={eta_min!r}')
        self.original_bug = original_bug
        self.T_max = T_max
        self.warmup_lr = warmup_lr
        self.warmup_epochs = warmup_epochs
        self.eta_min = eta_min
        super().__init__(
            optimizer,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    def lr_at(self, step: int, base_lr: float) -> float:
        """The lr of ``step`` (0-based, counted from ``begin``).

        Args:
            step (int): The step (epoch) index.
            base_lr (float): The optimizer's initial lr.

        Returns:
            float: The learning rate.
        """
        if step < self.warmup_epochs:
            return self.warmup_lr
        progress = (step - self.warmup_epochs) / self.T_max
        if self.original_bug is not None:
            factor = 0.5 * (1 + math.cos(math.pi * progress))
            start = (
                base_lr
                if self.original_bug.endswith('_torch1x') else self.warmup_lr)
            return start * factor**2
        return self.eta_min + (base_lr - self.eta_min) * 0.5 * (
            1 + math.cos(math.pi * progress))

    def _get_value(self) -> List[float]:
        return [self.lr_at(self.last_step, base) for base in self.base_values]
