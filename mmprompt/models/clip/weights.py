# Copyright (c) mmprompt contributors. All rights reserved.
"""Reading CLIP weight files in the formats users hand to ``pretrained``.

Two local formats exist in the wild:

- **OpenAI's own**: the TorchScript archives OpenAI released (``ViT-B-16.pt``,
  what CoOp loads) or their plain state dicts. Every float is an fp16 value
  (stored in fp16, or in fp32 when saved after ``clip_model.float()``) and
  the model was trained with QuickGELU.
- **open_clip's**: a state dict saved from an open_clip model (optionally
  wrapped as ``{'state_dict': ...}`` with DDP's ``module.`` prefix, or a
  safetensors file), whose activation is given by the architecture's config.

open_clip's standard ViT and ResNet CLIPs have OpenAI's key names, so a
state dict's keys alone cannot tell the two apart; its numbers can:
:func:`detect_weights_format`.
"""
import os.path as osp
import re
import zipfile
from typing import Dict, List, NamedTuple, Tuple

import torch

from mmprompt.utils import CorruptCheckpointError, load_checkpoint_file
from mmprompt.utils.checkpoint import strip_prefix

__all__ = [
    'ClipWeights', 'read_clip_weights', 'detect_weights_format',
    'has_openai_layout', 'looks_like_openai_state_dict', 'not_fp16_exact'
]

PRETRAINED_FORMS = (
    "`pretrained` accepts: an open_clip tag such as 'openai' (downloaded on "
    'first use, needs network), a local file in open_clip\'s format '
    '(a state dict saved from an open_clip model), a local file in '
    "OpenAI's own format (a TorchScript archive such as CoOp's "
    "'ViT-B-16.pt', or its state dict), or None for random weights.")

# Every key of OpenAI's CLIP module (ViT and ModifiedResNet image towers),
# plus the three integers its TorchScript archives add.
_OPENAI_KEY = re.compile(
    r"""^(?:positional_embedding|text_projection|logit_scale
    |input_resolution|context_length|vocab_size
    |token_embedding\.weight|ln_final\.(?:weight|bias)
    |(?:visual\.)?transformer\.resblocks\.\d+\.
        (?:attn\.(?:in_proj_weight|in_proj_bias|out_proj\.(?:weight|bias))
        |ln_[12]\.(?:weight|bias)|mlp\.c_(?:fc|proj)\.(?:weight|bias))
    |visual\.(?:class_embedding|positional_embedding|proj|conv1\.weight
        |ln_(?:pre|post)\.(?:weight|bias))
    |visual\.(?:conv[123]\.weight|bn[123]\.\w+)
    |visual\.layer\d\.\d+\.(?:conv[123]\.weight|bn[123]\.\w+
        |downsample\.[012]\.\w+)
    |visual\.attnpool\.(?:positional_embedding|[kqvc]_proj\.(?:weight|bias))
    )$""", re.X)


class ClipWeights(NamedTuple):
    """A CLIP weight file as read, and how its format was decided.

    Attributes:
        state_dict (dict): Parameter name to tensor.
        format (str): ``'openai'`` or ``'open_clip'``.
        reason (str): Why, in words, for the log.
        guess (bool): Whether the format was inferred from the numbers
            alone, so that a file of the other format could look the same
            (OpenAI's key layout, every float an fp16 value).
    """
    state_dict: Dict[str, torch.Tensor]
    format: str
    reason: str
    guess: bool


def _is_torchscript_archive(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    # torch.save writes '<name>/data.pkl'; TorchScript adds compiled code.
    return any('/code/' in name or name.endswith('constants.pkl')
               for name in names)


def _is_safetensors(head: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the
    JSON header."""
    return (len(head) > 9 and head[8:9] == b'{'
            and 1 < int.from_bytes(head[:8], 'little') < 1 << 30)


def _describe_start(head: bytes) -> str:
    if not head:
        return 'it is empty (0 bytes)'
    text = head[:40].decode('utf-8', errors='replace')
    if text and all(ch.isprintable() or ch in '\r\n\t' for ch in text):
        first = text.splitlines()[0] if text.strip() else text
        return f'it is a text file (it starts with {first!r})'
    return f'it starts with the bytes {head[:8]!r}'


def _floats(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {
        k: v
        for k, v in state_dict.items()
        if torch.is_tensor(v) and v.is_floating_point()
    }


def has_openai_layout(state_dict: Dict[str, torch.Tensor]) -> bool:
    """Whether a state dict has the keys of OpenAI's CLIP module and no
    others.

    open_clip's standard ViT and ResNet CLIPs share these keys; towers
    OpenAI never released (LayerScale, attention pooling, timm or Hugging
    Face towers, a separate text module) add or rename some.

    Args:
        state_dict (dict): Parameter name to tensor.

    Returns:
        bool: True for OpenAI's key layout.

    Examples:
        >>> import torch
        >>> has_openai_layout({'token_embedding.weight': torch.zeros(1),
        ...                    'visual.proj': torch.zeros(1),
        ...                    'transformer.resblocks.0.ln_1.bias':
        ...                        torch.zeros(1)})
        True
        >>> has_openai_layout({'text.token_embedding.weight': torch.zeros(1)})
        False
    """
    keys = list(state_dict)
    required = ('visual.', 'transformer.resblocks.')
    return ('token_embedding.weight' in state_dict
            and all(any(k.startswith(r) for k in keys) for r in required)
            and all(_OPENAI_KEY.match(k) for k in keys))


def looks_like_openai_state_dict(state_dict: Dict[str, torch.Tensor]) -> bool:
    """Whether a state dict is laid out and typed as OpenAI's releases:
    OpenAI's key layout (:func:`has_openai_layout`), every floating tensor
    in fp16.

    Args:
        state_dict (dict): Parameter name to tensor.

    Returns:
        bool: True for an fp16 OpenAI-format state dict.

    Examples:
        >>> import torch
        >>> sd = {'token_embedding.weight': torch.zeros(2).half(),
        ...       'visual.proj': torch.zeros(2).half(),
        ...       'transformer.resblocks.0.ln_1.bias': torch.zeros(2).half()}
        >>> looks_like_openai_state_dict(sd)
        True
        >>> sd['visual.proj'] = torch.zeros(2)
        >>> looks_like_openai_state_dict(sd)
        False
    """
    floats = _floats(state_dict)
    return (has_openai_layout(state_dict) and bool(floats)
            and all(v.dtype == torch.float16 for v in floats.values()))


def not_fp16_exact(state_dict: Dict[str, torch.Tensor]) -> List[str]:
    """The floating tensors holding a value fp16 cannot represent exactly
    (more mantissa bits, out of fp16's range, or NaN).

    Args:
        state_dict (dict): Parameter name to tensor.

    Returns:
        list[str]: Their names, in the state dict's order.

    Examples:
        >>> import torch
        >>> not_fp16_exact({'a': torch.tensor([0.5, 1.0]),
        ...                 'b': torch.tensor([0.1]),
        ...                 'c': torch.tensor([1e5])})
        ['b', 'c']
    """
    inexact = []
    for key, value in _floats(state_dict).items():
        if value.dtype == torch.float16:
            continue
        if not torch.equal(value.half().to(value.dtype), value):
            inexact.append(key)
    return inexact


def _dtype_names(floats: Dict[str, torch.Tensor]) -> str:
    return '/'.join(
        sorted({str(v.dtype).replace('torch.', '')
                for v in floats.values()}))


def detect_weights_format(state_dict: Dict[str, torch.Tensor]
                          ) -> Tuple[str, str, bool]:
    """Decide whether a state dict is OpenAI's or open_clip's.

    OpenAI released its CLIPs as fp16 values only. A state dict in OpenAI's
    key layout whose every float is an fp16 value (stored in fp16, or in
    fp32 as ``clip_model.float().state_dict()`` gives) is taken for
    OpenAI's: a guess, since an open_clip model rounded to fp16 looks the
    same. One holding values fp16 cannot represent was trained or saved in
    fp32, so it is not OpenAI's release; keys outside OpenAI's layout are
    open_clip's own. Both of these are open_clip's format.

    Args:
        state_dict (dict): Parameter name to tensor.

    Returns:
        tuple[str, str, bool]: The format (``'openai'`` or
        ``'open_clip'``), the reason in words, and whether it is a guess.

    Examples:
        >>> import torch
        >>> sd = {'token_embedding.weight': torch.tensor([0.5]),
        ...       'visual.proj': torch.tensor([0.25]),
        ...       'transformer.resblocks.0.ln_1.bias': torch.tensor([1.])}
        >>> detect_weights_format(sd)[::2]
        ('openai', True)
        >>> sd['visual.proj'] = torch.tensor([0.1])
        >>> detect_weights_format(sd)[::2]
        ('open_clip', False)
    """
    if not has_openai_layout(state_dict):
        odd = [k for k in state_dict if not _OPENAI_KEY.match(k)][:3]
        detail = f' (e.g. {odd})' if odd else ''
        return ('open_clip',
                f"its keys are not the layout of OpenAI's CLIP{detail}", False)
    floats = _floats(state_dict)
    if floats and all(v.dtype == torch.float16 for v in floats.values()):
        return ('openai',
                "every float tensor is fp16, as in OpenAI's releases", True)
    inexact = not_fp16_exact(state_dict)
    if floats and not inexact:
        return ('openai', 'every float is an fp16 value stored in '
                f"{_dtype_names(floats)}, as OpenAI's fp16 weights are once "
                'saved after .float() (as CoOp users save them)', True)
    return ('open_clip', f'{len(inexact)} of its {len(floats)} float tensors '
            f'hold values fp16 cannot represent (e.g. {inexact[0]!r}), so it '
            "is not OpenAI's fp16 release", False)


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


def _read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of a file that ``torch.save`` or safetensors wrote."""
    with open(path, 'rb') as f:
        head = f.read(64)
    if _is_safetensors(head):
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ValueError(
                f'{path!r} is a safetensors file: install safetensors '
                '(pip install safetensors) to read it') from err
        try:
            return load_file(path, device='cpu')
        except Exception as err:  # safetensors' error types vary
            raise ValueError(
                f'{path!r} could not be read as a safetensors CLIP weight '
                f'file ({type(err).__name__}: {err}). {PRETRAINED_FORMS}'
            ) from err
    # torch.save writes a zip archive (before torch 1.6, a pickle, which
    # starts with the PROTO opcode 0x80): anything else is not weights, and
    # unpickling it fails with errors such as 'pop from empty list'. (A
    # truncated zip has lost its directory but keeps its first header.)
    if not head.startswith(
        (b'PK\x03\x04', b'\x80')) and not zipfile.is_zipfile(path):
        raise ValueError(
            f'{path!r} is not a CLIP weight file: {_describe_start(head)}, '
            'while weight files are written by torch.save, TorchScript or '
            f'safetensors. {PRETRAINED_FORMS}')
    try:
        checkpoint = load_checkpoint_file(path, map_location='cpu')
    except CorruptCheckpointError as err:
        raise ValueError(f'{path!r} could not be read as a CLIP weight file '
                         f'({err}). {PRETRAINED_FORMS}') from err
    except (IndexError, TypeError, AttributeError, UnicodeDecodeError,
            OverflowError, MemoryError) as err:
        # The unpickler's errors on bytes that are not a valid pickle.
        raise ValueError(
            f'{path!r} could not be read as a CLIP weight file: it is '
            'truncated, corrupt or not written by torch.save '
            f'({type(err).__name__}: {err}). {PRETRAINED_FORMS}') from err
    return _unwrap(checkpoint, path)


def read_clip_weights(path: str, weights_format: str = 'auto') -> ClipWeights:
    """Read a local CLIP weight file and decide its format.

    Args:
        path (str): The file.
        weights_format (str): ``'auto'`` detects the format: TorchScript
            archives are OpenAI's; a state dict in OpenAI's key layout whose
            floats are all fp16 values (in fp16 or fp32) is taken for
            OpenAI's (a guess, see :func:`detect_weights_format`); anything
            else is open_clip's. ``'openai'`` or ``'open_clip'`` force one.
            Defaults to 'auto'.

    Returns:
        ClipWeights: The state dict, its format (``'openai'`` or
        ``'open_clip'``), why, and whether that is a guess.

    Examples:
        >>> import os.path as osp, tempfile, torch
        >>> from mmprompt.testing import (random_tiny_clip,
        ...                               save_openai_state_dict)
        >>> path = osp.join(tempfile.mkdtemp(), 'ViT-fp32.pt')
        >>> save_openai_state_dict(random_tiny_clip(), path, torch.float32)
        >>> weights = read_clip_weights(path)
        >>> weights.format, weights.guess
        ('openai', True)
        >>> read_clip_weights(path, 'open_clip')[1:]
        ('open_clip', "weights_format='open_clip'", False)
    """
    allowed = ('auto', 'openai', 'open_clip')
    if weights_format not in allowed:
        raise ValueError(f'weights_format must be one of {allowed}, '
                         f'got {weights_format!r}')
    if osp.isdir(path):
        raise IsADirectoryError(
            f'CLIP weight file {path!r} is a directory: pretrained takes '
            f'one file. {PRETRAINED_FORMS}')
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
        return ClipWeights(
            dict(state_dict), 'openai',
            'a TorchScript archive, which only OpenAI releases', False)
    state_dict = _read_state_dict(path)
    if weights_format != 'auto':
        return ClipWeights(state_dict, weights_format,
                           f'weights_format={weights_format!r}', False)
    return ClipWeights(state_dict, *detect_weights_format(state_dict))
