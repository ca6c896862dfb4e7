# Copyright (c) mmprompt contributors. All rights reserved.
"""Reading the checkpoints written by the original CoOp / CoCoOp code."""
from collections import OrderedDict
from typing import Any, Dict

import torch

__all__ = [
    'convert_coop_state_dict', 'is_original_checkpoint', 'LEARNER_PREFIX'
]

#: Where a PromptClassifier keeps its prompt learner's state.
LEARNER_PREFIX = 'head.prompt_learner.'

# Saved by the original but rebuilt from the class names on every load.
_REBUILT = ('token_prefix', 'token_suffix')
_LEARNED = ('ctx', 'meta_net.linear1.weight', 'meta_net.linear1.bias',
            'meta_net.linear2.weight', 'meta_net.linear2.bias')


def is_original_checkpoint(checkpoint: Any) -> bool:
    """Whether ``checkpoint`` was written by the original CoOp / CoCoOp code.

    The original saves the prompt learner's own state dict, so ``ctx`` is a
    top-level key of ``state_dict``; mmprompt saves the whole model's, where
    it is ``head.prompt_learner.ctx``.
    """
    state_dict = checkpoint
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        state_dict = checkpoint['state_dict']
    return isinstance(state_dict, dict) and any(
        k in ('ctx', 'module.ctx') for k in state_dict)


def convert_coop_state_dict(checkpoint: Any,
                            prefix: str = LEARNER_PREFIX
                            ) -> 'OrderedDict[str, torch.Tensor]':
    """Turn the original's prompt-learner checkpoint into mmprompt's keys.

    The original saves ``prompt_learner/model.pth.tar-N`` as
    ``{'state_dict': {'ctx', ['meta_net.*',] 'token_prefix',
    'token_suffix'}, 'epoch': N, ...}``. The token buffers are dropped, as
    the original drops them when loading: they are rebuilt from the class
    names being scored.

    Args:
        checkpoint (dict): The loaded file, or its ``state_dict``.
        prefix (str): Prefix of the learner in the mmprompt model.
            Defaults to ``'head.prompt_learner.'``.

    Returns:
        OrderedDict: mmprompt state dict, e.g.
        ``{'head.prompt_learner.ctx': ...}``.
    """
    state_dict = checkpoint
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        state_dict = checkpoint['state_dict']
    if not isinstance(state_dict, dict) or 'ctx' not in state_dict:
        found = list(state_dict)[:8] if isinstance(state_dict, dict) else \
            type(state_dict).__name__
        raise ValueError(
            'not a checkpoint of the original CoOp/CoCoOp prompt learner: '
            f"expected a 'state_dict' with 'ctx', found {found}")
    converted: Dict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        if key in _REBUILT:
            continue
        if key not in _LEARNED:
            raise ValueError(
                f'unexpected key {key!r} in the original checkpoint; '
                f'known keys are {list(_LEARNED + _REBUILT)}')
        converted[prefix + key] = value
    return converted
