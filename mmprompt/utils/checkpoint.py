# Copyright (c) mmprompt contributors. All rights reserved.
"""Every piece of checkpoint logic of mmprompt, once.

* **Weights-only loading.** Since torch 2.6 ``torch.load`` refuses any
  pickled global it does not know. mmengine's checkpoints hold a few: numpy
  arrays and scalars of the message hub and
  :class:`~mmengine.logging.HistoryBuffer`, whose statistics methods are
  pickled as ``getattr(HistoryBuffer, 'mean')``.
  :func:`register_safe_globals` allows exactly these, with a ``getattr``
  that resolves nothing but those methods, and
  :func:`register_checkpoint_loader` routes mmengine's ``CheckpointLoader``
  (``load_from``, ``--resume``, ``tools/test.py CKPT``) through
  :func:`load_checkpoint_file`, so a user never needs ``weights_only=False``
  for a file they were handed.
* **Key conversion.** :func:`strip_prefix` removes DDP's ``module.``;
  :func:`checkpoint_filter_fn` turns the checkpoints of the original code
  into mmprompt's keys (one case per original, as timm's
  ``checkpoint_filter_fn``) and passes mmprompt's through.
* **The fits-this-model check.** :func:`check_checkpoint_fits`: mmengine
  loads with ``strict=False`` and only warns on a misshapen tensor.
* **Discovery.** :func:`existing_checkpoints`, :func:`is_valid_checkpoint`,
  :func:`find_last_valid_checkpoint`: what auto-resume may use.
* **Atomic writes.** :func:`atomic_write` and :class:`AtomicLocalBackend`,
  the mmengine file backend ``'atomic_local'`` through which
  ``SafeCheckpointHook`` writes.

This module imports nothing from the rest of mmprompt: models, engine,
apis and tools build on it.
"""
import errno
import glob
import inspect
import logging
import os
import os.path as osp
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import CheckpointLoader

__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'OpaqueObject',
    'CheckpointMismatchError', 'CheckpointWriteError', 'load_checkpoint_file',
    'register_checkpoint_loader', 'register_safe_globals', 'strip_prefix',
    'LEARNER_PREFIX', 'original_format', 'checkpoint_filter_fn',
    'convert_coop_state_dict', 'check_checkpoint_fits', 'TRAINED_ON',
    'weights_fingerprint', 'weights_match', 'init_options', 'describe_model',
    'record_trained_on', 'trained_on_differences', 'check_trained_on',
    'CHECKPOINT_PATTERNS', 'POINTER', 'existing_checkpoints', 'read_pointer',
    'repoint', 'is_valid_checkpoint', 'find_last_valid_checkpoint',
    'atomic_write', 'remove_partial_writes', 'AtomicLocalBackend',
    'ATOMIC_BACKEND'
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled global that could run code on load."""


class CorruptCheckpointError(ValueError):
    """A file is not a checkpoint torch can read (truncated or corrupt)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold the learned state of the model."""


class CheckpointWriteError(OSError):
    """A file could not be written (e.g. the disk is full); the file it
    would have replaced is as it was. ``errno`` and ``filename`` are the
    write's."""


# ---------------------------------------------------------------------------
# Weights-only loading
# ---------------------------------------------------------------------------
def _statistics_method_names() -> set:
    # The built-in four are registered lazily, by the first HistoryBuffer.
    return {'min', 'max', 'current', 'mean'} | set(
        HistoryBuffer._statistics_methods)


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """A ``getattr`` restricted to the statistics methods of HistoryBuffer."""
    if obj is HistoryBuffer and name in _statistics_method_names():
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only the statistics methods of mmengine.logging.HistoryBuffer '
        f'({sorted(_statistics_method_names())}) may be looked up')


def _numpy_globals() -> list:
    """numpy objects found in mmengine checkpoints, under both numpy 1 and 2
    module paths (a checkpoint written under one loads under the other)."""
    core = np._core if hasattr(np, '_core') else np.core
    safe = [np.ndarray, np.dtype]
    for module_name in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        safe.append(
            (core.multiarray._reconstruct, f'{module_name}._reconstruct'))
        safe.append((core.multiarray.scalar, f'{module_name}.scalar'))
    # numpy >= 1.25 pickles dtypes through their classes in numpy.dtypes.
    if hasattr(np, 'dtypes'):
        for name in dir(np.dtypes):
            obj = getattr(np.dtypes, name)
            if isinstance(obj, type) and issubclass(obj, np.dtype):
                safe.append(obj)
    return safe


class OpaqueObject:
    """A pickled object of an original trainer that mmprompt never uses,
    read as data: its class name and pickled state, nothing constructed.

    The forked Dassl of KgCoOp and ProGrad (``Dassl.ProGrad.pytorch``)
    saves the warm-up scheduler's ``state_dict()``, which holds its
    ``successor`` whole: a pickled ``CosineAnnealingLR`` holding the pickled
    ``SGD`` (whose state is a ``defaultdict``). :func:`load_checkpoint_file`
    reads these classes as subclasses of this one, never importing or
    calling the real ones, so such a file loads with ``weights_only=True``
    and the learned tensors next to it can be converted.

    Attributes:
        name (str): The pickled class, e.g.
            ``'torch.optim.lr_scheduler.CosineAnnealingLR'``.
        state (Any): Its pickled state (plain containers and tensors).
    """

    name = ''
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f'<opaque {self.name}>'


def _opaque(name: str) -> type:
    return type('OpaqueObject', (OpaqueObject, ), dict(name=name))


def _plain_dict(*args) -> dict:
    """``collections.defaultdict(factory)`` read as a plain dict: the
    factory (a global) is never called."""
    return {}


#: The globals of original trainers' checkpoints read as inert data
#: (``(stand-in, pickled name)``), only while :func:`load_checkpoint_file`
#: reads a file.
_ORIGINAL_TRAINER_GLOBALS = [
    (_opaque(name), name)
    for name in ('torch.optim.lr_scheduler.CosineAnnealingLR',
                 'torch.optim.sgd.SGD')
] + [(_plain_dict, 'collections.defaultdict'), (dict, 'builtins.dict')]

_REGISTERED = False


def register_safe_globals() -> None:
    """Allow the globals of mmengine checkpoints in ``weights_only`` loads.

    Called when :mod:`mmprompt` is imported; calling it again does nothing.
    """
    global _REGISTERED
    if _REGISTERED or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    torch.serialization.add_safe_globals([HistoryBuffer] + _numpy_globals() + [
        (_history_buffer_getattr, 'builtins.getattr'),
        (_history_buffer_getattr, '__builtin__.getattr'),
    ])
    _REGISTERED = True


def load_checkpoint_file(filename: Union[str, Any],
                         map_location: Optional[Union[str,
                                                      torch.device]] = None,
                         **kwargs) -> Any:
    """``torch.load`` with ``weights_only=True`` and a clear refusal.

    The scheduler and optimizer objects that the original KgCoOp and
    ProGrad trainers pickle into their checkpoints are read as inert
    :class:`OpaqueObject` records (never constructed).

    Args:
        filename (str | file-like): The checkpoint to read.
        map_location (str | torch.device, optional): As in
            :func:`torch.load`. Defaults to None.

    Returns:
        Any: The unpickled object.

    Raises:
        UnsafeCheckpointError: The file holds a global outside the
            allowlist, i.e. unpickling it could run arbitrary code.
        CorruptCheckpointError: The file is truncated, corrupt or not a
            torch checkpoint.

    Examples:
        >>> import io, torch
        >>> buffer = io.BytesIO()
        >>> torch.save({'state_dict': {'w': torch.ones(2)}}, buffer)
        >>> _ = buffer.seek(0)
        >>> load_checkpoint_file(buffer)['state_dict']['w']
        tensor([1., 1.])
    """
    register_safe_globals()
    try:
        with torch.serialization.safe_globals(_ORIGINAL_TRAINER_GLOBALS):
            return torch.load(
                filename,
                map_location=map_location,
                weights_only=True,
                **kwargs)
    except UnsafeCheckpointError:
        raise
    except pickle.UnpicklingError as err:
        # torch words it as 'Unsupported global: GLOBAL x.y ...' or
        # 'Trying to load unsupported GLOBAL x.y ...' depending on version.
        found = re.search(r'(?i)(unsupported[^\n]*GLOBAL [^\n]*|refusing .*)',
                          str(err))
        if found is None:
            # torch's text advises weights_only=False, wrong for a file of
            # unknown origin: say what is wrong instead.
            raise _unreadable(filename) from err
        raise UnsafeCheckpointError(
            f'refusing to load {filename!r}: it holds a pickled object '
            'outside the tensors, containers, numpy arrays and mmengine '
            'log buffers that checkpoints need, and unpickling it could run '
            f"code ({found.group(1).rstrip('. ')}). Load it with "
            'torch.load(weights_only=False) yourself only if you trust its '
            'author.') from err
    except OSError as err:
        # A truncated zip archive gives '[Errno 22] Invalid argument',
        # without the file's name; a missing or unreadable file keeps its
        # own error, which names it.
        if err.errno not in (None, errno.EINVAL):
            raise
        raise _unreadable(filename, err) from err
    except Exception as err:  # noqa: BLE001
        # RuntimeError, EOFError, KeyError, IndexError ('pop from empty
        # list' for a text file), ... depending on where the bytes stop
        # making sense to the unpickler.
        raise _unreadable(filename, err) from err


def _text_head(filename: Any) -> Optional[str]:
    """The first line of ``filename`` if it is a text file, else None."""
    if not isinstance(filename, (str, os.PathLike)):
        return None
    try:
        with open(filename, 'rb') as f:
            head = f.read(4096)
    except OSError:
        return None
    # torch.save writes a zip archive ('PK') or a pickle ('\x80').
    if not head or head.startswith((b'PK', b'\x80')) or b'\0' in head:
        return None
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return None
    if not all(c.isprintable() or c.isspace() for c in text):
        return None
    return (text.strip().splitlines() or [''])[0]


def _unreadable(filename: Any,
                err: Optional[Exception] = None) -> CorruptCheckpointError:
    """The error for a file torch cannot read as a checkpoint; ``err`` is
    torch's, shown unless it is advice to unpickle without safety."""
    first = _text_head(filename)
    if first is not None:
        return CorruptCheckpointError(
            f'{str(filename)!r} is a text file, not a checkpoint (it begins '
            f'with {first[:40]!r}). Give a checkpoint written by '
            'tools/train.py (epoch_N.pth); if this file names one, as a '
            "work dir's last_checkpoint does, give that file.")
    return CorruptCheckpointError(
        f'{str(filename)!r} is not a readable checkpoint: it is truncated '
        'or corrupt (a copy or a save that did not finish) or was not '
        'written by torch.save' +
        (f' ({type(err).__name__}: {err})' if err is not None else '') +
        '. Copy it again, or use an earlier checkpoint of the run.')


def _load_from_local(filename: str, map_location=None) -> Any:
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    return load_checkpoint_file(filename, map_location=map_location)


def _load_from_http(filename: str,
                    map_location=None,
                    model_dir: Optional[str] = None,
                    progress: bool = True) -> Any:
    """Download once (the main process; the others wait), then load as a
    local file: mmengine's own URL loader unpickles without weights_only."""
    from urllib.parse import urlparse

    from mmengine.dist import barrier, is_main_process
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    path = osp.join(model_dir, osp.basename(urlparse(filename).path))
    if is_main_process() and not osp.isfile(path):
        os.makedirs(model_dir, exist_ok=True)
        download_url_to_file(filename, path, progress=progress)
    barrier()
    return load_checkpoint_file(path, map_location=map_location)


def register_checkpoint_loader() -> None:
    """Route mmengine's loading of checkpoint files (``--resume``,
    ``load_from``, ``tools/test.py CKPT``), local or by URL, through
    :func:`load_checkpoint_file`."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=_load_from_http, force=True)


# ---------------------------------------------------------------------------
# Key conversion
# ---------------------------------------------------------------------------
#: Where a PromptClassifier keeps its prompt learner's state.
LEARNER_PREFIX = 'head.prompt_learner.'

# CoOp / CoCoOp (KaiyangZhou/CoOp): what prompt_learner/model.pth.tar-N
# holds. The token buffers are saved but rebuilt from the class names on
# every load, by the original as by mmprompt.
_COOP_LEARNED = ('ctx', 'meta_net.linear1.weight', 'meta_net.linear1.bias',
                 'meta_net.linear2.weight', 'meta_net.linear2.bias')
_COOP_REBUILT = ('token_prefix', 'token_suffix')
# KgCoOp (htyao89/KgCoOp): CoOp's learner plus modules built, saved and
# loaded but never used in forward (dead code of the original): a
# (1, 512) 'bias_vectors' and an fp16 Linear(512, 512) 'meta_net'. Only
# 'ctx' is learned; KgCoOp's load_model also deletes a 'token_midfix'.
_KGCOOP_UNUSED = ('bias_vectors', 'meta_net.linear1.weight',
                  'meta_net.linear1.bias')
_KGCOOP_REBUILT = _COOP_REBUILT + ('token_midfix', )
# ProGrad (BeierZhu/Prompt-align): CoOp's learner, so CoOp's state dict; the
# whole file tells the forked Dassl that wrote it (Dassl.ProGrad.pytorch
# saves the optimizer and scheduler but no 'val_result', which upstream
# Dassl, CoOp's, adds). Converted as CoOp's.
_PROGRAD_FILE = ('optimizer', 'scheduler')
# MaPLe, IVLP, deep language prompting and VPT-deep
# (muzairkhattak/multimodal-prompt-learning; PromptSRC's repository saves
# IVLP's keys): the trainers save the whole CustomCLIP, the frozen CLIP
# included (image_encoder.*, text_encoder.*, logit_scale; fp16 and fp32
# mixed in the authors' fp16 runs). MaPLe's prompts are all under
# prompt_learner.; IVLP's and VPT's deep prompts live inside the CLIP
# modules, as VPT (appended) and resblocks.{i}.VPT_shallow (before block i).
# PromptSRC (muzairkhattak/PromptSRC) saves IVLP's keys and its frozen
# zero-shot image tower, prompt_learner.ZS_image_encoder.* (dropped: mmprompt
# runs the one frozen CLIP without prompts).
_DEEP_FORMATS = ('MaPLe', 'IVLP', 'deep language prompting', 'VPT-deep',
                 'PromptSRC')
_PROMPTSRC_TEACHER = 'prompt_learner.ZS_image_encoder.'
_DEEP_IN_CLIP = re.compile(
    r'(image|text)_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow')
_DEEP_CLIP_BLOCK = re.compile(
    r'(image|text)_encoder\.transformer\.resblocks\.(\d+)\.')
_MAPLE_LEARNED = re.compile(r'ctx|proj\.(weight|bias)|compound_prompts_text'
                            r'\.\d+|compound_prompt_projections\.\d+\.'
                            r'(weight|bias)')


def strip_prefix(state_dict: Dict[str, Any],
                 prefix: str = 'module.') -> 'OrderedDict[str, Any]':
    """The state dict with ``prefix`` removed from the keys that have it.

    Args:
        state_dict (dict): A state dict, e.g. of a model wrapped in
            ``DistributedDataParallel``.
        prefix (str): What to remove. Defaults to ``'module.'``.

    Returns:
        OrderedDict: The same values under the shortened keys, in order.

    Examples:
        >>> strip_prefix({'module.head.w': 1, 'b': 2})
        OrderedDict([('head.w', 1), ('b', 2)])
    """
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v)
                       for k, v in state_dict.items())


def _state_dict_of(checkpoint: Any) -> Any:
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        return checkpoint['state_dict']
    return checkpoint


def original_format(checkpoint: Any) -> Optional[str]:
    """Which original code wrote ``checkpoint``, if not mmprompt.

    Args:
        checkpoint (dict): A loaded checkpoint or its state dict.

    Returns:
        str | None: ``'CoOp/CoCoOp'`` for ``prompt_learner/model.pth.tar-N``
        of KaiyangZhou/CoOp (the prompt learner's own state dict, so ``ctx``
        is a top-level key); ``'KgCoOp'`` for that of htyao89/KgCoOp (``ctx``
        beside its unused ``bias_vectors``); ``'ProGrad'`` for the whole
        file of BeierZhu/Prompt-align (CoOp's state dict, saved by its
        forked Dassl with the optimizer and scheduler but no
        ``val_result``; its state dict alone reads as CoOp's, and converts
        alike); ``'MaPLe'``, ``'IVLP'``, ``'deep language prompting'`` or
        ``'VPT-deep'`` for the whole ``CustomCLIP`` that the trainers of
        muzairkhattak/multimodal-prompt-learning save (MaPLe's
        ``prompt_learner.proj`` and compound prompts; IVLP's
        ``image_encoder.VPT`` beside ``prompt_learner.ctx``; VPT's without
        it; deep language prompting's ``prompt_learner.ctx`` in a whole
        model without ``image_encoder.VPT``); ``'PromptSRC'`` for the whole
        model muzairkhattak/PromptSRC saves (IVLP's keys beside its
        zero-shot tower ``prompt_learner.ZS_image_encoder.*``); None for
        mmprompt's
        checkpoints (the whole model's state dict,
        ``head.prompt_learner.ctx``) and anything else.

    Examples:
        >>> original_format({'state_dict': {'ctx': 0, 'token_prefix': 0}})
        'CoOp/CoCoOp'
        >>> original_format({'ctx': 0, 'bias_vectors': 0})
        'KgCoOp'
        >>> original_format({'state_dict': {'ctx': 0}, 'epoch': 100,
        ...                  'optimizer': {}, 'scheduler': {}})
        'ProGrad'
        >>> original_format({'state_dict': {'prompt_learner.ctx': 0,
        ...     'image_encoder.VPT': 0, 'logit_scale': 0}})
        'IVLP'
        >>> original_format({'head.prompt_learner.ctx': 0}) is None
        True
    """
    state_dict = _state_dict_of(checkpoint)
    if not isinstance(state_dict, dict):
        return None
    keys = strip_prefix(state_dict)
    if any(k.startswith(_PROMPTSRC_TEACHER) for k in keys):
        return 'PromptSRC'
    if 'prompt_learner.proj.weight' in keys or any(
            k.startswith('prompt_learner.compound_prompts_text.')
            for k in keys):
        return 'MaPLe'
    if 'image_encoder.VPT' in keys:
        return 'IVLP' if 'prompt_learner.ctx' in keys else 'VPT-deep'
    if 'prompt_learner.ctx' in keys and any(
            k.startswith('text_encoder.') for k in keys):
        return 'deep language prompting'
    if 'ctx' in keys and 'bias_vectors' in keys:
        return 'KgCoOp'
    if 'ctx' in keys and state_dict is not checkpoint and all(
            k in checkpoint for k in _PROGRAD_FILE) and all(
                k in _COOP_LEARNED + _COOP_REBUILT
                for k in keys) and 'val_result' not in checkpoint:
        return 'ProGrad'
    if 'ctx' in keys:
        return 'CoOp/CoCoOp'
    # Another method's original code: recognise its keys here and add its
    # case to checkpoint_filter_fn.
    return None


def _learner_prefix(model: Optional[nn.Module]) -> str:
    """Where ``model`` keeps its prompt learner (``head.prompt_learner.``
    for every PromptClassifier)."""
    if model is None:
        return LEARNER_PREFIX
    if is_model_wrapper(model):
        model = model.module
    for name, _ in model.named_modules():
        if name == 'prompt_learner' or name.endswith('.prompt_learner'):
            return name + '.'
    return LEARNER_PREFIX


def _deep_blocks(state_dict: Dict[str, Any], tower: str) -> int:
    """The number of blocks of a tower of the CLIP saved in a whole
    ``CustomCLIP`` state dict (0 where it holds none)."""
    blocks = [
        int(m.group(2)) for m in map(_DEEP_CLIP_BLOCK.match, state_dict)
        if m and m.group(1) == tower
    ]
    return max(blocks) + 1 if blocks else 0


#: The prompt learner (or a subclass) each deep original's prompts load
#: into.
_DEEP_LEARNERS = {
    'MaPLe': 'MaPLePromptLearner',
    'IVLP': 'IVLPPromptLearner',
    'deep language prompting': 'DeepLanguagePromptLearner',
    'VPT-deep': 'VPTDeepPromptLearner',
    # IVLP's learner, or its text half for PROMPT_DEPTH_VISION 0.
    'PromptSRC': 'DeepLanguagePromptLearner',
}


def _check_deep_learner(model: Optional[nn.Module], source: str) -> None:
    """Refuse to load a deep original's prompts into another method."""
    if model is None:
        return
    if is_model_wrapper(model):
        model = model.module
    learner = dict(model.named_modules()).get(_learner_prefix(model)[:-1])
    if learner is None:
        return
    expected = _DEEP_LEARNERS[source]
    if not any(cls.__name__ == expected for cls in type(learner).__mro__):
        raise ValueError(
            f'the checkpoint is one of the original {source} code, whose '
            f'prompts load into a {expected}; the model has a '
            f'{type(learner).__name__}. Use a config of {source} (e.g. '
            'configs/_base_/models/ of that method), or give --method if '
            'the keys were read as the wrong method.')


def _convert_deep(state_dict: Dict[str, Any], source: str,
                  prefix: str) -> 'OrderedDict[str, Any]':
    """One case for the four trainers of multimodal-prompt-learning: the
    learned prompts of the whole saved model, under mmprompt's learner
    names; the frozen CLIP and the token buffers dropped."""
    converted = OrderedDict()
    if source == 'MaPLe':
        # Compound prompts past the towers' last block are created, saved
        # and never used by the original (their .grad stays None).
        used = min(
            _deep_blocks(state_dict, 'text') or 10**9,
            _deep_blocks(state_dict, 'image') or 10**9) - 1
        for key, value in state_dict.items():
            if not key.startswith('prompt_learner.'):
                continue
            name = key[len('prompt_learner.'):]
            if name in _COOP_REBUILT:
                continue
            if not _MAPLE_LEARNED.fullmatch(name):
                raise ValueError(
                    f'unexpected key {key!r} in a checkpoint of the original '
                    'MaPLe code; its prompt learner holds ctx, proj.*, '
                    'compound_prompts_text.<j> and '
                    'compound_prompt_projections.<j>.*')
            if name.startswith('compound') and int(name.split('.')[1]) >= used:
                continue
            converted[prefix + name] = value
        return converted
    for key, value in state_dict.items():
        deep = _DEEP_IN_CLIP.fullmatch(key)
        if key == 'prompt_learner.ctx':
            name = 'ctx'
        elif key == 'image_encoder.VPT':
            name = 'vision_ctx'
        elif deep:
            tower = 'text' if deep.group(1) == 'text' else 'vision'
            name = f'{tower}_deep.{int(deep.group(2)) - 1}'
        elif key.startswith('prompt_learner.'):
            if key[len('prompt_learner.'):] in _COOP_REBUILT or (
                    source == 'PromptSRC'
                    and key.startswith(_PROMPTSRC_TEACHER)):
                continue
            raise ValueError(
                f'unexpected key {key!r} in a checkpoint of the original '
                f'{source} code; its prompt learner holds ctx and the token '
                'buffers only')
        else:
            continue  # the frozen CLIP
        if source == 'deep language prompting' and name.startswith('vision'):
            raise ValueError(
                f'{key!r} is a vision prompt, which deep language prompting '
                'has not: the checkpoint is an IVLP one')
        if source == 'VPT-deep' and not name.startswith('vision'):
            raise ValueError(
                f'{key!r} is a text prompt, which VPT-deep has not: the '
                'checkpoint is an IVLP or deep language prompting one')
        converted[prefix + name] = value
    return converted


def checkpoint_filter_fn(state_dict: Dict[str, Any],
                         model: Optional[nn.Module] = None,
                         source: Optional[str] = None
                         ) -> 'OrderedDict[str, Any]':
    """A checkpoint's state dict in the keys of an mmprompt model.

    The one place where checkpoints of other code are read, one case per
    original, in the manner of timm's ``checkpoint_filter_fn``. DDP's
    ``module.`` prefix is removed; mmprompt's own checkpoints pass through.

    * CoOp / CoCoOp (KaiyangZhou/CoOp) save
      ``prompt_learner/model.pth.tar-N`` as ``{'state_dict': {'ctx',
      ['meta_net.linear1.weight', ...,] 'token_prefix', 'token_suffix'},
      'epoch': N}``. The learned tensors go under the model's prompt
      learner (``head.prompt_learner.ctx``, ...); the token buffers are
      dropped, as the original drops them when loading: they are rebuilt
      from the class names being scored.
    * ProGrad (BeierZhu/Prompt-align) learns CoOp's prompt and saves
      CoOp's state dict (``ctx`` and the token buffers, converted alike);
      its forked Dassl adds the optimizer and a pickled scheduler, read as
      inert data by :func:`load_checkpoint_file`.
    * KgCoOp (htyao89/KgCoOp) saves the same file with ``ctx``, the token
      buffers and modules its forward never uses: ``bias_vectors`` and an
      fp16 ``meta_net.linear1``. ``ctx`` goes under the prompt learner
      (a ``CoOpPromptLearner``); the rest is dropped.
    * MaPLe, IVLP, deep language prompting and VPT-deep
      (muzairkhattak/multimodal-prompt-learning) save the whole model
      (``{'state_dict': CustomCLIP.state_dict(), 'epoch': N, ...}``, fp16
      and fp32 mixed): the frozen CLIP (``image_encoder.*``,
      ``text_encoder.*``, ``logit_scale``) and the token buffers are
      dropped. MaPLe's ``prompt_learner.{ctx, proj.*,
      compound_prompts_text.j, compound_prompt_projections.j.*}`` keep their
      names under the prompt learner (compound prompts past the towers'
      blocks, which the original never uses, are dropped);
      IVLP's ``prompt_learner.ctx``, ``image_encoder.VPT`` and
      ``{image,text}_encoder.transformer.resblocks.i.VPT_shallow`` become
      ``ctx``, ``vision_ctx`` and ``{vision,text}_deep.(i-1)``.
    * PromptSRC (muzairkhattak/PromptSRC) saves IVLP's keys and its frozen
      zero-shot image tower (``prompt_learner.ZS_image_encoder.*``,
      dropped with the rest of the frozen CLIP); converted as IVLP's, into
      an ``IVLPPromptLearner`` (or a ``DeepLanguagePromptLearner`` for
      ``PROMPT_DEPTH_VISION`` 0).

    Args:
        state_dict (dict): A checkpoint's ``state_dict``, or the whole
            loaded checkpoint (its ``state_dict`` is used).
        model (nn.Module, optional): The model the state dict is for (or
            its DDP wrapper), to place the original's tensors under its
            prompt learner. Defaults to None: ``head.prompt_learner.``.
        source (str, optional): The original that wrote the checkpoint, as
            :func:`original_format` names them, in place of the one it
            detects (e.g. ``'IVLP'`` for PromptSRC's files, whose keys are
            IVLP's). Defaults to None.

    Returns:
        OrderedDict: The state dict in the model's keys.

    Raises:
        TypeError: ``state_dict`` is not a dict.
        ValueError: An original checkpoint holds a key the conversion does
            not know (named, with the known ones).

    Examples:
        >>> import torch
        >>> original = {'state_dict': {
        ...     'ctx': torch.zeros(4, 512),
        ...     'token_prefix': torch.zeros(10, 1, 512),
        ...     'token_suffix': torch.zeros(10, 72, 512)}, 'epoch': 10}
        >>> list(checkpoint_filter_fn(original))
        ['head.prompt_learner.ctx']
        >>> list(checkpoint_filter_fn(
        ...     {'module.head.prompt_learner.ctx': torch.zeros(4, 512)}))
        ['head.prompt_learner.ctx']
    """
    checkpoint, state_dict = state_dict, _state_dict_of(state_dict)
    if not isinstance(state_dict, dict):
        raise TypeError('a state dict must be a dict of tensors, got '
                        f'{type(state_dict).__name__}')
    detected = original_format(checkpoint)
    if source is not None and source != detected:
        known = ('CoOp/CoCoOp', 'KgCoOp', 'ProGrad') + _DEEP_FORMATS
        if source not in known:
            raise ValueError(f'source must be one of {list(known)}, got '
                             f'{source!r}')
        if detected is None or (source in _DEEP_FORMATS) != (detected
                                                             in _DEEP_FORMATS):
            raise ValueError(
                f'the checkpoint is not one of the original {source} code: '
                f'its keys read as {detected or "no original"}')
    source = source or detected
    state_dict = strip_prefix(state_dict)
    if source is None:
        return state_dict
    prefix = _learner_prefix(model)
    if source in _DEEP_FORMATS:
        _check_deep_learner(model, source)
        return _convert_deep(state_dict, source, prefix)
    converted = OrderedDict()
    if source in ('CoOp/CoCoOp', 'ProGrad'):
        for key, value in state_dict.items():
            if key in _COOP_REBUILT:
                continue
            if key not in _COOP_LEARNED:
                raise ValueError(
                    f'unexpected key {key!r} in a checkpoint of the original '
                    f'{source} code; known keys are '
                    f'{list(_COOP_LEARNED + _COOP_REBUILT)}')
            converted[prefix + key] = value
        return converted
    if source == 'KgCoOp':
        for key, value in state_dict.items():
            if key in _KGCOOP_UNUSED + _KGCOOP_REBUILT:
                continue
            if key != 'ctx':
                raise ValueError(
                    f'unexpected key {key!r} in a checkpoint of the original '
                    f"{source} code; known keys are "
                    f"{['ctx', *_KGCOOP_UNUSED, *_KGCOOP_REBUILT]}")
            converted[prefix + key] = value
        return converted
    # A format original_format() knows must have its case above.
    raise NotImplementedError(
        f'no conversion for checkpoints of the original {source} code')


def convert_coop_state_dict(checkpoint: Any) -> 'OrderedDict[str, Any]':
    """:func:`checkpoint_filter_fn` for a file that must be an original
    CoOp / CoCoOp checkpoint (``tools/model_converters/coop_to_mmprompt.py``).

    Args:
        checkpoint (dict): The loaded file, or its ``state_dict``.

    Returns:
        OrderedDict: mmprompt's state dict, e.g.
        ``{'head.prompt_learner.ctx': ...}``.

    Raises:
        ValueError: ``checkpoint`` is not one of the original prompt
            learner.
    """
    # ProGrad's prompt learner is CoOp's.
    if original_format(checkpoint) not in ('CoOp/CoCoOp', 'ProGrad'):
        state_dict = _state_dict_of(checkpoint)
        found = list(state_dict)[:8] if isinstance(state_dict, dict) else \
            type(state_dict).__name__
        raise ValueError(
            'not a checkpoint of the original CoOp/CoCoOp prompt learner: '
            f"expected a 'state_dict' with 'ctx', found {found}")
    return checkpoint_filter_fn(checkpoint)


# ---------------------------------------------------------------------------
# Does a checkpoint fit the model?
# ---------------------------------------------------------------------------
def check_checkpoint_fits(model: nn.Module, state_dict: Dict[str, Any],
                          path: str) -> None:
    """Refuse a checkpoint that lacks a learned tensor or has another shape.

    mmengine loads with ``strict=False`` and only warns on a shape mismatch:
    a checkpoint of another arch or ``n_ctx`` would leave the random
    initial context in place without an error. Extra state (the classes of
    class-specific contexts) is not checked here: the prompt learner checks
    it with a better message than a shape, and converted checkpoints lack
    it.

    Args:
        model (nn.Module): The model (or its DDP wrapper).
        state_dict (dict): The checkpoint's state dict, in the model's keys
            (:func:`checkpoint_filter_fn`); ``module.`` is ignored.
        path (str): The checkpoint, for the message.

    Raises:
        CheckpointMismatchError: Naming the missing keys, or every
            mismatching shape with both values.

    Examples:
        >>> import torch.nn as nn
        >>> model = nn.Linear(2, 3)
        >>> check_checkpoint_fits(model, model.state_dict(), 'same.pth')
        >>> try:
        ...     check_checkpoint_fits(model, nn.Linear(2, 4).state_dict(),
        ...                           'other.pth')
        ... except CheckpointMismatchError as err:
        ...     print(err)
        checkpoint 'other.pth' does not fit the model of the config:
        weight: (4, 2) in the checkpoint, (3, 2) in the model; ...
    """
    if is_model_wrapper(model):
        model = model.module
    state_dict = strip_prefix(state_dict)
    expected = {
        k: v
        for k, v in model.state_dict().items()
        if isinstance(v, torch.Tensor) and not k.endswith('_extra_state')
    }
    missing = sorted(set(expected) - set(state_dict))
    if missing:
        raise CheckpointMismatchError(
            f'checkpoint {path!r} does not hold {missing} of the model of '
            f'the config (it holds {sorted(state_dict)[:8]}). Give a '
            'checkpoint of this method or the config it was trained with; '
            'convert checkpoints of the original CoOp/CoCoOp code with '
            'tools/model_converters/coop_to_mmprompt.py.')
    # An empty tensor is sized by the data when a method is fitted (the
    # N·K entries of Tip-Adapter's cache): it takes the checkpoint's shape.
    wrong = [
        f'{k}: {tuple(state_dict[k].shape)} in the checkpoint, '
        f'{tuple(v.shape)} in the model' for k, v in expected.items()
        if isinstance(state_dict[k], torch.Tensor)
        and state_dict[k].shape != v.shape and v.numel() > 0
    ]
    if wrong:
        raise CheckpointMismatchError(
            f'checkpoint {path!r} does not fit the model of the config: '
            f'{"; ".join(wrong)}. The config must build the prompt learner '
            'it was trained with (arch, n_ctx, ctx_init, csc and the number '
            'of classes for csc).')


# ---------------------------------------------------------------------------
# What a checkpoint was trained with
# ---------------------------------------------------------------------------
#: The key of ``checkpoint['meta']`` recording the model a checkpoint was
#: trained with (:func:`record_trained_on`).
TRAINED_ON = 'trained_on'
#: How far the sampled weights of the same CLIP may differ: bf16 rounds to
#: 2**-9 relative, fp16 to 2**-11 (subnormals to 6e-8 absolute).
_WEIGHTS_RTOL, _WEIGHTS_ATOL = 1e-2, 1e-4
_IGNORE_HINT = ('--ignore-checkpoint-meta (tools/train.py, tools/test.py) or '
                'ignore_checkpoint_meta=True (PromptInferencer)')


def weights_fingerprint(module: nn.Module,
                        tensors: int = 16,
                        per_tensor: int = 4) -> List[float]:
    """A few values of a model's weights, to tell its weights apart.

    ``per_tensor`` values at fixed positions of ``tensors`` weight matrices
    (the floating tensors of two or more dimensions, by name, evenly
    spaced), read from the loaded model in memory: microseconds, where a
    hash of a CLIP's file would read hundreds of MB at every save. Unlike
    the file's path, size or time, the values do not change when the file
    is copied, moved or converted to another format; compared with
    :func:`weights_match`, they do not change with the precision either
    (fp32, fp16, bf16). Matrices are never initialised to a constant, so
    two random initialisations differ too.

    Args:
        module (nn.Module): The model, e.g. ``OpenCLIP.model``.
        tensors (int): How many weight matrices to sample. Defaults to 16.
        per_tensor (int): Values per matrix. Defaults to 4.

    Returns:
        list[float]: The values, in a fixed order.

    Examples:
        >>> import torch.nn as nn
        >>> model = nn.Linear(3, 2)
        >>> len(weights_fingerprint(model))  # one matrix: 'weight'
        4
        >>> weights_match(weights_fingerprint(model),
        ...               weights_fingerprint(model.half()))
        True
    """
    state = module.state_dict()
    names = sorted(k for k, v in state.items() if isinstance(v, torch.Tensor)
                   and v.is_floating_point() and v.dim() >= 2)
    if len(names) > tensors:
        names = [
            names[i * (len(names) - 1) // (tensors - 1)]
            for i in range(tensors)
        ]
    values = []
    for name in names:
        flat = state[name].detach().reshape(-1)
        positions = sorted({
            i * (flat.numel() - 1) // max(per_tensor - 1, 1)
            for i in range(per_tensor)
        })
        values.extend(float(flat[i].float()) for i in positions)
    return values


def weights_match(saved: Sequence[float], current: Sequence[float]) -> bool:
    """Whether two :func:`weights_fingerprint` s are of the same weights,
    whatever the precision each was loaded in."""
    if len(saved) != len(current):
        return False
    return bool(
        np.allclose(
            np.asarray(saved, dtype=np.float64),
            np.asarray(current, dtype=np.float64),
            rtol=_WEIGHTS_RTOL,
            atol=_WEIGHTS_ATOL))


def init_options(module: nn.Module) -> Dict[str, Any]:
    """The arguments of ``module``'s ``__init__`` that it keeps as plain
    attributes of the same name, if they are strings, numbers, booleans or
    None (``n_ctx``, ``ctx_init``, ``csc``, ``class_token_position`` of a
    prompt learner). Properties are left out: they are derived state (e.g.
    ``num_classes``, the number of class names scored now).

    Args:
        module (nn.Module): E.g. a prompt learner.

    Returns:
        dict: Name to value, in the order of the signature.

    Examples:
        >>> import torch.nn as nn
        >>> init_options(nn.Dropout(0.3))
        {'p': 0.3, 'inplace': False}
    """
    options = {}
    for name in inspect.signature(type(module).__init__).parameters:
        if name in ('self', 'init_cfg') or isinstance(
                getattr(type(module), name, None), property):
            continue
        value = vars(module).get(name, _MISSING)
        if value is None or isinstance(value, (str, int, float, bool)):
            options[name] = value
    return options


_MISSING = object()


def describe_model(model: nn.Module) -> Optional[Dict[str, Any]]:
    """What ``model`` would record as trained with: its
    ``checkpoint_meta()`` (``PromptClassifier`` has one), or None.

    Args:
        model (nn.Module): The model or its DDP wrapper.

    Returns:
        dict | None: E.g. ``{'clip': {'arch', 'pretrained', 'weights'},
        'head': 'CoOpHead', 'prompt_learner': {'type', 'n_ctx', ...}}``.
    """
    if is_model_wrapper(model):
        model = model.module
    describe = getattr(model, 'checkpoint_meta', None)
    return describe() if callable(describe) else None


def record_trained_on(checkpoint: dict,
                      model: nn.Module,
                      class_names: Optional[Sequence[str]] = None) -> None:
    """Record in ``checkpoint['meta']['trained_on']`` what ``model`` is
    (:func:`describe_model`) and the classes it was trained on.

    Args:
        checkpoint (dict): The checkpoint about to be saved.
        model (nn.Module): The model (or its DDP wrapper). A model without
            ``checkpoint_meta()`` records nothing.
        class_names (Sequence[str], optional): The training set's classes.
            Defaults to None: the classes the model scores now.

    Examples:
        >>> import torch.nn as nn
        >>> class Model(nn.Linear):
        ...     def checkpoint_meta(self):
        ...         return dict(head='LinearHead')
        >>> checkpoint = dict(meta=dict(epoch=1))
        >>> record_trained_on(checkpoint, Model(2, 2), ['cat', 'dog'])
        >>> checkpoint['meta']['trained_on']
        {'head': 'LinearHead', 'class_names': ['cat', 'dog']}
    """
    meta = describe_model(model)
    if meta is None:
        return
    if class_names is None and not is_model_wrapper(model):
        class_names = getattr(model, 'class_names', None)
    if class_names:
        meta['class_names'] = [str(name) for name in class_names]
    if not isinstance(checkpoint.get('meta'), dict):
        checkpoint['meta'] = {}
    checkpoint['meta'][TRAINED_ON] = meta


def _flatten(meta: Dict[str, Any], prefix: str = '') -> Dict[str, Any]:
    flat = {}
    for key, value in meta.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[prefix + key] = value
    return flat


def trained_on_differences(saved: Dict[str, Any],
                           current: Dict[str, Any]) -> List[str]:
    """How the model a checkpoint records differs from the current one.

    Compared: the CLIP's arch, weights (:func:`weights_match`; not the
    ``pretrained`` path, which changes from machine to machine) and
    activation (one file read as OpenAI's or open_clip's), the head's
    type, the prompt learner's type and options. Not compared: the class
    names (a shared context scores any classes; class-specific contexts
    refuse others themselves) and anything only one side records.

    Args:
        saved (dict): ``checkpoint['meta']['trained_on']``.
        current (dict): :func:`describe_model` of the model.

    Returns:
        list[str]: One line per difference, naming both sides; empty if
        they agree.

    Examples:
        >>> trained_on_differences(
        ...     {'clip': {'arch': 'ViT-B-16'}, 'head': 'CoOpHead'},
        ...     {'clip': {'arch': 'RN50'}, 'head': 'CoOpHead'})
        ["clip.arch: 'ViT-B-16' in the checkpoint, 'RN50' in the config"]
    """
    saved, current = _flatten(saved), _flatten(current)
    lines = []
    for key, value in saved.items():
        if key in ('class_names', 'clip.weights', 'clip.pretrained'
                   ) or key not in current or current[key] == value:
            continue
        lines.append(f'{key}: {value!r} in the checkpoint, {current[key]!r} '
                     'in the config')
    weights, now = saved.get('clip.weights'), current.get('clip.weights')
    if weights is not None and now is not None and len(weights) == len(
            now) and not weights_match(weights, now):
        lines.append(
            'clip weights: the checkpoint was trained on '
            f"pretrained={saved.get('clip.pretrained')!r}, the config loads "
            f"pretrained={current.get('clip.pretrained')!r}, and their "
            'values differ')
    return lines


def check_trained_on(checkpoint: Dict[str, Any],
                     model: nn.Module,
                     path: str,
                     ignore: bool = False) -> None:
    """Refuse a checkpoint trained with another CLIP or prompt learner.

    A prompt fits any model whose tensor shapes match: CoOp's context
    trained on ViT-B/16 loads into RN50 (both have text width 512), or
    into a learner with the class name in another position, and gives a
    wrong accuracy without an error. A checkpoint that records the model
    it was trained with (:func:`record_trained_on`) is compared with
    ``model`` (:func:`trained_on_differences`).

    Checkpoints that record nothing (written before mmprompt recorded it,
    or converted from the original code) load as before, with a warning
    that they could not be checked.

    Args:
        checkpoint (dict): The loaded checkpoint.
        model (nn.Module): The model it is loaded into (or its wrapper).
        path (str): The checkpoint, for the messages.
        ignore (bool): Load it despite differences (they are logged as a
            warning). Defaults to False.

    Raises:
        CheckpointMismatchError: The recorded model differs, naming every
            difference with both values and the way to load it anyway.
    """
    current = describe_model(model)
    if current is None:
        return
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    saved = meta.get(TRAINED_ON) if isinstance(meta, dict) else None
    if not isinstance(saved, dict):
        print_log(
            f'checkpoint {path!r} does not record the model it was trained '
            'with (written before mmprompt recorded it, or converted from '
            "the original code): loading it without checking the config's "
            'CLIP and prompt learner against it',
            logger='current',
            level=logging.WARNING)
        return
    lines = trained_on_differences(saved, current)
    if not lines:
        return
    if ignore:
        print_log(
            f'checkpoint {path!r} was trained with another model than the '
            f'config builds ({"; ".join(lines)}); loading it anyway, as '
            'asked',
            logger='current',
            level=logging.WARNING)
        return
    raise CheckpointMismatchError(
        f'checkpoint {path!r} was trained with another model than the '
        f'config builds: {"; ".join(lines)}. Its prompt would load (the '
        'shapes fit) and give wrong results. Use the config it was trained '
        "with (the checkpoint's meta['cfg'] holds it), or, if you mean it, "
        f'load it anyway with {_IGNORE_HINT}.')


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------
#: Names of checkpoints written by mmengine's CheckpointHook.
CHECKPOINT_PATTERNS = ('epoch_*.pth', 'iter_*.pth', 'best_*.pth')
#: The file in the work dir naming the last checkpoint (mmengine's).
POINTER = 'last_checkpoint'


def _step_of(path: str) -> int:
    found = re.search(r'_(\d+)\.pth$', path)
    return int(found.group(1)) if found else -1


def existing_checkpoints(work_dir: str) -> List[str]:
    """The checkpoints (and ``last_checkpoint``) of a run in ``work_dir``.

    Args:
        work_dir (str): A work dir.

    Returns:
        list[str]: Their file names, sorted by step; empty for a fresh
        folder.

    Examples:
        >>> existing_checkpoints('/no/such/folder')
        []
    """
    if not osp.isdir(work_dir):
        return []
    names = set()
    for pattern in CHECKPOINT_PATTERNS + (POINTER, ):
        names.update(
            osp.basename(p) for p in glob.glob(osp.join(work_dir, pattern)))
    return sorted(names, key=lambda n: (_step_of(n), n))


def _resolve_pointer(work_dir: str, named: str) -> str:
    """The file ``named`` (what ``work_dir/last_checkpoint`` holds) means.

    mmengine writes the absolute path. A relative one is read in the
    pointer's own folder; an absolute one in another folder whose file name
    exists in ``work_dir`` is that file: the work dir was copied or moved
    (a pointer into ``CheckpointHook(out_dir=...)``, whose files are not in
    the work dir, is kept).
    """
    if not osp.isabs(named):
        return osp.join(work_dir, named)
    own = osp.join(work_dir, osp.basename(named))
    if osp.realpath(osp.dirname(named)) != osp.realpath(work_dir) \
            and osp.isfile(own):
        return own
    return named


def read_pointer(work_dir: str, resolve: bool = True) -> Optional[str]:
    """What ``work_dir/last_checkpoint`` names.

    Args:
        work_dir (str): A work dir.
        resolve (bool): Read the path in the work dir the pointer lives in:
            relative to it, and for an absolute path into another folder
            (a copied or moved work dir), the work dir's own file of that
            name if there is one. False returns the text as it is.
            Defaults to True.

    Returns:
        str | None: The path it names, or None if there is no pointer or
        it is empty.

    Examples:
        >>> import os.path as osp, tempfile
        >>> copy = tempfile.mkdtemp()
        >>> for name, text in [('epoch_2.pth', ''),
        ...                    ('last_checkpoint', '/old/run/epoch_2.pth')]:
        ...     _ = open(osp.join(copy, name), 'w').write(text)
        >>> read_pointer(copy) == osp.join(copy, 'epoch_2.pth')
        True
        >>> read_pointer(copy, resolve=False)
        '/old/run/epoch_2.pth'
    """
    pointer = osp.join(work_dir, POINTER)
    if not osp.isfile(pointer):
        return None
    with open(pointer, errors='replace') as f:
        named = f.read().strip() or None
    if named is None or not resolve:
        return named
    return _resolve_pointer(work_dir, named)


def repoint(work_dir: str) -> Optional[str]:
    """Make ``work_dir/last_checkpoint`` name the work dir's own checkpoint
    where it names another folder's file of the same name (a copied or
    moved work dir), so that mmengine's auto-resume reads the right file.

    Args:
        work_dir (str): A work dir.

    Returns:
        str | None: The path the pointer names now, if it was rewritten
        (atomically, with a log line); None if it was left as it was.
    """
    named = read_pointer(work_dir, resolve=False)
    if named is None:
        return None
    resolved = _resolve_pointer(work_dir, named)
    if resolved == named:
        return None
    atomic_write(osp.join(work_dir, POINTER), resolved.encode())
    print_log(
        f'{osp.join(work_dir, POINTER)} named {named!r}, outside the work '
        f'dir it is in (the work dir was copied or moved); it names the '
        f'work dir\'s own {resolved!r} now',
        logger='current')
    return resolved


def is_valid_checkpoint(path: str) -> bool:
    """Whether ``path`` reads (weights-only) as a checkpoint to resume from:
    a dict with ``state_dict`` and the ``meta`` epoch and iteration.

    Args:
        path (str): A file.

    Returns:
        bool: False for a missing, truncated, corrupt or unsafe file.

    Examples:
        >>> is_valid_checkpoint('/no/such/epoch_1.pth')
        False
    """
    if not osp.isfile(path):
        return False
    try:
        checkpoint = load_checkpoint_file(path, map_location='cpu')
    except Exception:  # truncated, corrupt, unsafe: not one to resume from
        return False
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return (isinstance(checkpoint.get('state_dict'), dict)
            and isinstance(meta, dict) and 'epoch' in meta and 'iter' in meta)


def find_last_valid_checkpoint(work_dir: str,
                               folders: Sequence[str] = ()) -> Optional[str]:
    """The checkpoint auto-resume should use, skipping unreadable ones.

    The one ``work_dir/last_checkpoint`` names if it reads; otherwise the
    readable ``epoch_N.pth`` / ``iter_N.pth`` with the largest ``N`` in its
    folder, ``work_dir`` and ``folders``, with a warning naming the file
    skipped. A torn pointer (a kill while it was written) is one that does
    not name a readable checkpoint.

    Args:
        work_dir (str): The run's work dir.
        folders (Sequence[str]): Other folders checkpoints are written to
            (``CheckpointHook(out_dir=...)``). Defaults to ().

    Returns:
        str | None: The checkpoint, or None if there is none.
    """
    pointer = osp.join(work_dir, POINTER)
    named = read_pointer(work_dir)
    if named is not None and is_valid_checkpoint(named):
        return named
    search = [work_dir] + list(folders)
    if named is not None:
        search.insert(0, osp.dirname(named))
    candidates = set()
    for folder in search:
        for pattern in ('epoch_*.pth', 'iter_*.pth'):
            candidates.update(glob.glob(osp.join(folder, pattern)))
    for path in sorted(candidates, key=_step_of, reverse=True):
        if path == named:
            continue
        if is_valid_checkpoint(path):
            if osp.isfile(pointer):
                print_log(
                    f'{pointer} names {named!r}, which is missing or not a '
                    f'readable checkpoint; resuming from {path!r}, the last '
                    'readable one',
                    logger='current',
                    level=logging.WARNING)
            return path
        print_log(
            f'skipping {path!r}: not a readable checkpoint (truncated or '
            'corrupt)',
            logger='current',
            level=logging.WARNING)
    if named is not None:
        print_log(
            f'{pointer} names {named!r}, which is missing or not a readable '
            'checkpoint, and no other checkpoint reads; training starts '
            'from scratch',
            logger='current',
            level=logging.WARNING)
    return None


# ---------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------
_TMP_MARK = '.tmp-'
#: The name of :class:`AtomicLocalBackend` among mmengine's file backends.
ATOMIC_BACKEND = 'atomic_local'


def _tmp_path(path: str) -> str:
    """A temporary name in the folder of ``path`` (same file system, so
    :func:`os.replace` is atomic), hidden and unique to this process."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}{_TMP_MARK}{os.getpid()}')


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` survive a power loss (POSIX only)."""
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` and ``put_text``.

    A file is written to a hidden ``.<name>.tmp-<pid>`` in its folder,
    fsynced and moved into place with :func:`os.replace`: whoever reads the
    path, and whenever the writer is killed, sees the old file or the whole
    new one, never a part. A killed write leaves only the temporary file
    (:func:`remove_partial_writes` removes it).

    mmengine's ``save_checkpoint`` writes every checkpoint with
    ``get_file_backend(path, backend_args).put(bytes, path)``; with
    ``backend_args=dict(backend='atomic_local')`` (the default of
    ``SafeCheckpointHook`` for local folders; any ``CheckpointHook``
    accepts it) checkpoints are written atomically. Registered under that
    name only, without a prefix: nothing else changes.

    Examples:
        >>> from mmengine.fileio import get_file_backend
        >>> backend = get_file_backend(
        ...     backend_args=dict(backend='atomic_local'))
        >>> type(backend).__name__
        'AtomicLocalBackend'
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically (creating its folder).

        Raises:
            CheckpointWriteError: The write failed (a full disk, a
                read-only folder, ...): the message names ``filepath``;
                the file there, if any, is as it was.
        """
        filepath = str(filepath)
        tmp = _tmp_path(filepath)
        try:
            # Written by LocalBackend.put, so that a test can stand in for
            # a write killed halfway through.
            super().put(obj, tmp)
            with open(tmp, 'rb+') as f:
                # Without fsync a power loss may leave a renamed empty file.
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except OSError as err:
            # 'No space left on device' alone names no file.
            reason = err.strerror or str(err)
            raise CheckpointWriteError(
                err.errno, f'cannot write {filepath!r}: {reason} '
                f'({len(obj) / 1e6:.1f} MB); nothing was replaced: the '
                'files in its folder are as they were', filepath) from err
        finally:
            if osp.exists(tmp):
                os.remove(tmp)
        _fsync_folder(osp.dirname(filepath))

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically."""
        self.put(obj.encode(encoding), filepath)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or
    the whole new one, whenever the process is killed.

    Args:
        path (str): The destination; its folder is created if needed.
        data (bytes): The whole content.

    Examples:
        >>> import os.path as osp, tempfile
        >>> path = osp.join(tempfile.mkdtemp(), 'last_checkpoint')
        >>> atomic_write(path, b'epoch_2.pth')
        >>> open(path).read()
        'epoch_2.pth'
    """
    AtomicLocalBackend().put(data, path)


def remove_partial_writes(folder: str) -> List[str]:
    """Remove the temporary files that killed atomic writes left.

    Args:
        folder (str): A folder written to with :func:`atomic_write` or
            :class:`AtomicLocalBackend`.

    Returns:
        list[str]: The files removed.
    """
    removed = []
    for tmp in glob.glob(osp.join(folder, f'.*{_TMP_MARK}*')):
        os.remove(tmp)
        removed.append(tmp)
    return removed
