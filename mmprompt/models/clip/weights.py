# Copyright (c) mmprompt contributors. All rights reserved.
"""Reading CLIP weight files in the formats users hand to ``pretrained``.

Two local formats exist in the wild:

- **OpenAI's own**: the TorchScript archives OpenAI released (``ViT-B-16.pt``,
  what CoOp loads) or their plain state dicts. Every floating tensor is fp16
  and the model was trained with QuickGELU.
- **open_clip's**: a state dict saved from an open_clip model (optionally
  wrapped as ``{'state_dict': ...}`` with DDP's ``module.`` prefix), whose
  activation is given by the architecture's config.
"""
import os.path as osp
import zipfile
from typing import Dict, Tuple

import torch

from mmprompt.utils import CorruptCheckpointError, load_checkpoint_file
from mmprompt.utils.checkpoint import strip_prefix

__all__ = ['read_clip_weights', 'looks_like_openai_state_dict']

PRETRAINED_FORMS = (
    "`pretrained` accepts: an open_clip tag such as 'openai' (downloaded on "
    'first use, needs network), a local file in open_clip\'s format '
    '(a state dict saved from an open_clip model), a local file in '
    "OpenAI's own format (a TorchScript archive such as CoOp's "
    "'ViT-B-16.pt', or its state dict), or None for random weights.")


def _is_torchscript_archive(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    # torch.save writes '<name>/data.pkl'; TorchScript adds compiled code.
    return any('/code/' in name or name.endswith('constants.pkl')
               for name in names)


def looks_like_openai_state_dict(state_dict: Dict[str, torch.Tensor]) -> bool:
    """Whether a state dict is laid out and typed as OpenAI's releases.

    OpenAI's files use the key names of its ``CLIP`` module (which open_clip
    shares) and store every floating tensor in fp16.

    Args:
        state_dict (dict): Parameter name to tensor.

    Returns:
        bool: True for an OpenAI-format state dict.
    """
    required = ('visual.', 'transformer.resblocks.')
    keys = list(state_dict)
    if not all(any(k.startswith(r) for k in keys) for r in required):
        return False
    if 'token_embedding.weight' not in state_dict:
        return False
    floats = [
        v for v in state_dict.values()
        if torch.is_tensor(v) and v.is_floating_point()
    ]
    return bool(floats) and all(v.dtype == torch.float16 for v in floats)


def _unwrap(checkpoint, path: str) -> Dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, dict) or not all(
            torch.is_tensor(v) for v in checkpoint.values()):
        raise ValueError(
            f'{path!r} is not a CLIP weight file: expected a state dict '
            '(parameter name -> tensor), optionally under a "state_dict" '
            f'key, got {type(checkpoint).__name__}. {PRETRAINED_FORMS}')
    if checkpoint and all(k.startswith('module.') for k in checkpoint):
        checkpoint = strip_prefix(checkpoint)
    return checkpoint


def read_clip_weights(path: str,
                      weights_format: str = 'auto'
                      ) -> Tuple[Dict[str, torch.Tensor], str]:
    """Read a local CLIP weight file.

    Args:
        path (str): The file.
        weights_format (str): ``'auto'`` detects the format: TorchScript
            archives and all-fp16 state dicts are OpenAI's, anything else is
            open_clip's. ``'openai'`` or ``'open_clip'`` force one.
            Defaults to 'auto'.

    Returns:
        tuple[dict, str]: The state dict and its format, ``'openai'`` or
        ``'open_clip'``.
    """
    allowed = ('auto', 'openai', 'open_clip')
    if weights_format not in allowed:
        raise ValueError(f'weights_format must be one of {allowed}, '
                         f'got {weights_format!r}')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'CLIP weight file {path!r} does not exist. {PRETRAINED_FORMS}')
    if _is_torchscript_archive(path):
        if weights_format == 'open_clip':
            raise ValueError(
                f'{path!r} is a TorchScript archive, which only OpenAI '
                "releases; use weights_format='openai' or 'auto'")
        # Loading an archive deserialises its tensors and compiled code but
        # runs none of it; only the state dict is kept.
        state_dict = torch.jit.load(path, map_location='cpu').state_dict()
        return dict(state_dict), 'openai'
    try:
        checkpoint = load_checkpoint_file(path, map_location='cpu')
    except CorruptCheckpointError as err:
        raise ValueError(f'{path!r} could not be read as a CLIP weight file '
                         f'({err}). {PRETRAINED_FORMS}') from err
    state_dict = _unwrap(checkpoint, path)
    if weights_format == 'auto':
        weights_format = ('openai' if looks_like_openai_state_dict(state_dict)
                          else 'open_clip')
    return state_dict, weights_format
