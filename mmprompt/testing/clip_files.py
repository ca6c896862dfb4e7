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


def randomize_biases_(model: nn.Module, std: float = 0.02) -> nn.Module:
    """Draw every ``*bias`` parameter of ``model`` from N(0, std), in place.

    open_clip initialises the attention's and the MLP's biases to zero (so
    do the golden tiny CLIPs): a computation that drops or misplaces a bias
    agrees with the reference on such a model. Tests that compare a
    re-implemented path with open_clip's own run on random biases.

    Args:
        model (nn.Module): An open_clip model (``OpenCLIP.model``: the
            wrapper keeps it out of its own parameters).
        std (float): Standard deviation. Defaults to 0.02.

    Returns:
        nn.Module: ``model``.
    """
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('bias'):
                param.normal_(std=std)
    return model


def random_tiny_clip(arch: str = 'mmprompt-tiny-vit',
                     seed: int = 0,
                     fp16_exact: bool = True) -> nn.Module:
    """A random open_clip model, by default with fp16-exact weights.

    Rounding to fp16 first makes the fp16 OpenAI format hold the very same
    numbers as the fp32 open_clip format, so every format loads identically.
    ``fp16_exact=False`` keeps open_clip's fp32 random init: weights as a
    model trained in fp32 has them, which no fp16 file can hold.

    Args:
        arch (str): An open_clip architecture. Defaults to
            'mmprompt-tiny-vit'.
        seed (int): Seed of the random init. Defaults to 0.
        fp16_exact (bool): Round every floating weight to fp16 (stored in
            fp32). Defaults to True.

    Returns:
        nn.Module: The open_clip model, in eval mode.

    Examples:
        >>> from mmprompt.testing import random_tiny_clip
        >>> model = random_tiny_clip()
        >>> w = model.visual.conv1.weight
        >>> w.dtype, bool((w.half().float() == w).all())
        (torch.float32, True)
        >>> w = random_tiny_clip(fp16_exact=False).visual.conv1.weight
        >>> bool((w.half().float() == w).all())
        False
    """
    torch.manual_seed(seed)
    with no_random_init_warning():
        model = open_clip.create_model(arch, pretrained=None)
    if fp16_exact:
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


def _openai_state_dict(model: nn.Module,
                       dtype: torch.dtype = torch.float16
                       ) -> Dict[str, torch.Tensor]:
    return {
        k: v.half().to(dtype) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
        if k != 'attn_mask' and not k.endswith('.attn_mask')
    }


def save_openai_state_dict(model: nn.Module,
                           path: str,
                           dtype: torch.dtype = torch.float16) -> None:
    """OpenAI's state-dict format: the same keys, every float an fp16 value.

    Args:
        model (nn.Module): The open_clip model whose weights are written.
        path (str): The file to write.
        dtype (torch.dtype): The type the (fp16-rounded) floats are saved
            in: ``torch.float16`` as OpenAI's releases, ``torch.float32``
            as ``clip_model.float().state_dict()`` gives (what CoOp users
            save). Defaults to torch.float16.
    """
    torch.save(_openai_state_dict(model, dtype), path)


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
