# Copyright (c) mmprompt contributors. All rights reserved.
"""Gaussian prompt aggregation (GPA) of PromptSRC: the learned prompts of
every epoch, averaged with Gaussian weights over the epochs."""
import math
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from mmprompt.registry import HOOKS

__all__ = ['GaussianPromptAggregationHook', 'gaussian_epoch_weights']

#: Where the hook's state is kept in a checkpoint.
CHECKPOINT_KEY = 'gaussian_prompt_aggregation'


def _check_mean_std(mean: float, std: float) -> None:
    if isinstance(std, bool) or not isinstance(std, (int, float)) \
            or not std > 0 or not math.isfinite(std):
        raise ValueError(f'std must be a positive number of epochs, got '
                         f'{std!r}')
    if isinstance(mean, bool) or not isinstance(mean, (int, float)) \
            or not math.isfinite(mean):
        raise ValueError(f'mean must be a finite epoch number, got {mean!r}')


def gaussian_epoch_weights(mean: float, std: float,
                           max_epochs: int) -> List[float]:
    """The normalised Gaussian weights ``g_e`` of epochs ``e = 1..E``.

    ``g_e = N(e; mean, std) / sum_e' N(e'; mean, std)`` in float64, the sum
    taken epoch by epoch as PromptSRC's ``build_model`` takes it.

    Args:
        mean (float): The epoch of the largest weight (``GPA_MEAN``).
        std (float): The spread in epochs (``GPA_STD``), positive.
        max_epochs (int): ``E``, the number of epochs trained.

    Returns:
        list[float]: ``E`` weights summing to 1.

    Examples:
        >>> w = gaussian_epoch_weights(15, 1, 20)
        >>> [round(x, 3) for x in w[12:17]]
        [0.054, 0.242, 0.399, 0.242, 0.054]
    """
    _check_mean_std(mean, std)
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) \
            or max_epochs < 1:
        raise ValueError(f'max_epochs must be a positive int, got '
                         f'{max_epochs!r}')
    scale = 1 / (std * math.sqrt(2 * math.pi))
    density = [
        scale * math.exp(-0.5 * ((epoch - mean) / std)**2)
        for epoch in range(1, max_epochs + 1)
    ]
    total = sum(density)
    if not total > 0:
        raise ValueError(
            f'mean={mean!r} and std={std!r} give every one of the '
            f'{max_epochs} epochs a Gaussian weight of 0 in float64: put '
            'the mean within the epochs trained or widen std')
    return [d / total for d in density]


@HOOKS.register_module()
class GaussianPromptAggregationHook(Hook):
    """Average the learned tensors of every epoch with Gaussian weights
    (PromptSRC's `GPA <https://arxiv.org/abs/2307.06948>`_).

    After epoch ``e`` of ``E`` (``after_train_epoch``, after the epoch's
    last optimizer step, where the original snapshots its model), the
    learned tensors ``θ_e`` are added to a running sum with the weight
    ``g_e`` of :func:`gaussian_epoch_weights`; after the last epoch the sum
    ``Σ_e g_e θ_e`` replaces them, so the last checkpoint, the validation
    after it and the test hold the aggregate. The products and the sum are
    taken as the original takes them (each tensor times ``g_e`` in its own
    dtype, epochs in order), so the aggregate is bit-identical to the
    original's for the same epoch states.

    What is averaged:

    * by default (``average_frozen=False``) the learnable tensors only (the
      parameters that require gradients): one extra copy of the prompts;
    * ``average_frozen=True`` reproduces the original, which averages its
      whole ``state_dict()``: also every floating-point tensor of the
      model's state dict and the frozen CLIP's weights (``model.clip.model``,
      the open_clip model :class:`~mmprompt.models.OpenCLIP` keeps
      unregistered, its token embedding standing in for the original's
      token buffers; the class tokens are rebuilt from it). Because the
      fp32 weights ``fl32(g_e)`` do not sum to exactly 1, the frozen
      weights then move by about 2e-7 relative (by up to 1e-3 in fp16), as
      in the original; they are changed in memory only (mmprompt's
      checkpoints hold the learned tensors). For equality checks with the
      original; it keeps a copy of the whole CLIP and saves it in every
      checkpoint.

    The running sum is saved in each checkpoint
    (``checkpoint['gaussian_prompt_aggregation']``) and restored by
    ``--resume``, so a run killed and resumed ends with the aggregate of a
    run never interrupted. Under DDP every process holds the same
    parameters and sums them alike.

    Needs epoch-based training (``train_cfg.by_epoch=True``).

    Args:
        mean (float): The epoch of the largest weight (1-based; the
            original's ``GPA_MEAN``). Defaults to 15 (the base-to-new
            setting).
        std (float): The spread in epochs (``GPA_STD``). Defaults to 1.
        average_frozen (bool): Also average the frozen weights, as the
            original. Defaults to False.

    Examples:
        >>> custom_hooks = [
        ...     dict(type='GaussianPromptAggregationHook', mean=15, std=1)]
        >>> hook = GaussianPromptAggregationHook(mean=6, std=10)
        >>> round(hook.epoch_weights(20)[5], 4)
        0.0628
    """

    priority = 'NORMAL'  # before the checkpoint hook (VERY_LOW) saves

    def __init__(self,
                 mean: float = 15.,
                 std: float = 1.,
                 average_frozen: bool = False) -> None:
        _check_mean_std(mean, std)
        if not isinstance(average_frozen, bool):
            raise TypeError(f'average_frozen must be a bool, got '
                            f'{average_frozen!r}')
        self.mean = mean
        self.std = std
        self.average_frozen = average_frozen
        self.weights: List[float] = []
        self.epochs: List[int] = []
        self.sum: Dict[str, torch.Tensor] = {}
        self._loaded: Optional[dict] = None

    def epoch_weights(self, max_epochs: int) -> List[float]:
        """:func:`gaussian_epoch_weights` of this hook's mean and std."""
        return gaussian_epoch_weights(self.mean, self.std, max_epochs)

    # -- what is averaged ----------------------------------------------------
    def tensors(self, model: nn.Module) -> Dict[str, torch.Tensor]:
        """The tensors averaged, by name: the learnable parameters, and with
        ``average_frozen`` every floating-point tensor of the state dict and
        the frozen CLIP's weights (under ``clip.model.``)."""
        if is_model_wrapper(model):
            model = model.module
        found = {
            name: p
            for name, p in model.named_parameters() if p.requires_grad
        }
        if not self.average_frozen:
            return found
        for name, t in model.state_dict(keep_vars=True).items():
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                found.setdefault(name, t)
        frozen = getattr(getattr(model, 'clip', None), 'model', None)
        if isinstance(frozen, nn.Module):
            for name, t in frozen.state_dict(keep_vars=True).items():
                if t.is_floating_point():
                    found.setdefault(f'clip.model.{name}', t)
        return found

    def accumulate(self, model: nn.Module, weight: float) -> None:
        """Add ``weight`` times the model's tensors to the running sum."""
        with torch.no_grad():
            for name, t in self.tensors(model).items():
                # In the tensor's dtype, as the original: fl(θ · fl(g)).
                weighted = t.detach() * weight
                previous = self.sum.get(name)
                self.sum[name] = (
                    weighted if previous is None else weighted + previous)

    def load_aggregate(self, model: nn.Module) -> None:
        """Write the running sum into the model's tensors."""
        tensors = self.tensors(model)
        missing = sorted(set(self.sum) ^ set(tensors))
        if missing:
            raise RuntimeError(
                'the averaged tensors are not those of the model: '
                f'{missing[:5]} (the model changed during training?)')
        with torch.no_grad():
            for name, t in tensors.items():
                t.copy_(self.sum[name])
        if self.average_frozen:
            # The class tokens were gathered from the token embedding that
            # was just averaged: gather them again.
            inner = model.module if is_model_wrapper(model) else model
            names = list(getattr(inner, 'class_names', []) or [])
            if names and hasattr(inner, 'set_class_names'):
                inner.set_class_names(names)

    # -- the run -------------------------------------------------------------
    def before_train(self, runner) -> None:
        """Compute the epoch weights; restore the running sum of a resumed
        run or start an empty one."""
        loop = runner.train_loop
        max_epochs = getattr(loop, 'max_epochs', None)
        if not isinstance(loop, EpochBasedTrainLoop) \
                or not isinstance(max_epochs, int):
            raise TypeError(
                'GaussianPromptAggregationHook weights epochs and needs an '
                'epoch-based training loop (train_cfg=dict(by_epoch=True, '
                f'max_epochs=...)), got {type(runner.train_loop).__name__}')
        self.weights = self.epoch_weights(max_epochs)
        loaded, self._loaded = self._loaded, None
        if runner.epoch == 0:  # a new run (load_from gives weights only)
            self.epochs, self.sum = [], {}
            return
        if loaded is None:
            raise RuntimeError(
                f'resumed at epoch {runner.epoch} from a checkpoint without '
                'the state of GaussianPromptAggregationHook: the prompts of '
                f'epochs 1..{runner.epoch} are lost to the aggregate. Resume '
                'from a checkpoint of a run with this hook, or start anew')
        self._restore(loaded, runner.epoch, max_epochs)

    def _restore(self, state: dict, epoch: int, max_epochs: int) -> None:
        expected = dict(
            mean=self.mean,
            std=self.std,
            average_frozen=self.average_frozen,
            max_epochs=max_epochs)
        saved = {k: state.get(k) for k in expected}
        if saved != expected:
            raise ValueError(
                'the checkpoint was aggregated with '
                f'{saved}, this run aggregates with {expected}: resume with '
                'the settings of the run that wrote it')
        epochs = [int(e) for e in state['epochs']]
        if epochs != list(range(1, epoch + 1)):
            raise ValueError(
                f'the checkpoint of epoch {epoch} has aggregated the '
                f'epochs {epochs}, expected 1..{epoch}')
        self.epochs = epochs
        self.sum = dict(state['sum'])

    def after_train_epoch(self, runner) -> None:
        """Add this epoch's tensors; after the last, load the aggregate."""
        epoch = runner.epoch + 1
        self.accumulate(runner.model, self.weights[epoch - 1])
        self.epochs.append(epoch)
        if epoch == len(self.weights):
            self.load_aggregate(runner.model)
            kind = 'every tensor' if self.average_frozen else \
                'the learnable tensors'
            print_log(
                f'Gaussian prompt aggregation: {kind} now hold the average '
                f'over {epoch} epochs (mean {self.mean}, std {self.std})',
                logger='current')

    # -- checkpoints ---------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the running sum with the checkpoint."""
        checkpoint[CHECKPOINT_KEY] = dict(
            mean=self.mean,
            std=self.std,
            average_frozen=self.average_frozen,
            max_epochs=len(self.weights),
            epochs=list(self.epochs),
            sum={
                k: v.clone()
                for k, v in self.sum.items()
            })

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the saved running sum for :meth:`before_train` (which knows
        whether the run resumes)."""
        self._loaded = checkpoint.get(CHECKPOINT_KEY)
