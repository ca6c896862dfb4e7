# Copyright (c) mmprompt contributors. All rights reserved.
"""Write a random CLIP in each weight format ``OpenCLIP(pretrained=...)``
accepts, so the loading code is exercised without downloading anything."""
from typing import Dict

import open_clip
import torch
import torch.nn as nn

from mmprompt.models.clip.openclip import no_random_init_warning

__all__ = [
    'random_tiny_clip', 'save_open_clip_weights', 'save_openai_state_dict',
    'save_openai_torchscript'
]


def random_tiny_clip(arch: str = 'mmprompt-tiny-vit',
                     seed: int = 0) -> nn.Module:
    """A random open_clip model whose floating weights are fp16-exact.

    Rounding to fp16 first makes the fp16 OpenAI format hold the very same
    numbers as the fp32 open_clip format, so every format loads identically.
    """
    torch.manual_seed(seed)
    with no_random_init_warning():
        model = open_clip.create_model(arch, pretrained=None)
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return model.eval()


def save_open_clip_weights(model: nn.Module,
                           path: str,
                           wrapped: bool = False) -> None:
    """open_clip's format: the model's fp32 state dict; ``wrapped`` saves it
    as a training checkpoint, ``{'state_dict': {'module.' + key: ...}}``."""
    state_dict = model.state_dict()
    if wrapped:
        state_dict = {
            'epoch': 1,
            'state_dict': {
                f'module.{k}': v
                for k, v in state_dict.items()
            }
        }
    torch.save(state_dict, path)


def _openai_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {
        k: v.half() if v.is_floating_point() else v
        for k, v in model.state_dict().items()
        if k != 'attn_mask' and not k.endswith('.attn_mask')
    }


def save_openai_state_dict(model: nn.Module, path: str) -> None:
    """OpenAI's state-dict format: the same keys, every float in fp16."""
    torch.save(_openai_state_dict(model), path)


class _Holder(nn.Module):

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_openai_torchscript(model: nn.Module, path: str) -> None:
    """OpenAI's release format: a TorchScript archive of the fp16 weights,
    as CoOp's ``ViT-B-16.pt``."""
    root = _Holder()
    for key, value in _openai_state_dict(model).items():
        *parents, leaf = key.split('.')
        module = root
        for name in parents:
            if not hasattr(module, name):
                module.add_module(name, _Holder())
            module = getattr(module, name)
        if value.is_floating_point():
            module.register_parameter(leaf,
                                      nn.Parameter(value, requires_grad=False))
        else:
            module.register_buffer(leaf, value)
    torch.jit.script(root).save(path)
