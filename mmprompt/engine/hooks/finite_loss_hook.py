# Copyright (c) mmprompt contributors. All rights reserved.
"""The hook that stops training at the first non-finite loss."""
from typing import Any, Optional

import torch
from mmengine.hooks import Hook

from mmprompt.registry import HOOKS

__all__ = ['FiniteLossHook']


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first infinite or NaN loss, naming the iteration.

    The original CoOp (Dassl's ``detect_anomaly``) raises
    ``FloatingPointError('Loss is infinite or NaN!')``. This hook checks
    ``outputs['loss']``, the total loss the optimizer stepped on, after each
    iteration: one ``isfinite`` on a scalar, where mmengine's
    ``RuntimeInfoHook`` already reads the value back every iteration. The
    failing step has been applied to the weights in memory, but no
    checkpoint is written after it: the ones on disk hold finite weights.

    Examples:
        >>> default_hooks = dict(finite_loss=dict(type='FiniteLossHook'))
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        """Raise ``FloatingPointError`` if ``outputs['loss']`` is not
        finite."""
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        loss = torch.as_tensor(loss).detach()
        if bool(torch.isfinite(loss).all()):
            return
        try:
            per_epoch = f'/{len(runner.train_dataloader)}'
        except TypeError:
            per_epoch = ''
        losses = ', '.join(
            f'{k}={float(torch.as_tensor(v).detach().mean()):.4g}'
            for k, v in outputs.items() if 'loss' in k)
        raise FloatingPointError(
            f'Loss is infinite or NaN! ({losses}) at iteration '
            f'{runner.iter + 1} (epoch {runner.epoch + 1}, batch '
            f'{batch_idx + 1}{per_epoch}); training stopped. The checkpoints '
            f'in {runner.work_dir!r} are from before this iteration. Usual '
            'causes: a learning rate too high, fp16 weights '
            "(model.clip.precision='fp16'; try 'fp32'), or broken input.")
