# Copyright (c) mmprompt contributors. All rights reserved.
"""Checkpoint loading that stays safe under ``torch.load(weights_only=True)``.

Since torch 2.6 ``torch.load`` refuses any pickled global it does not know.
The checkpoints mmengine writes hold a few such globals: numpy arrays and
scalars from the message hub and :class:`~mmengine.logging.HistoryBuffer`,
whose statistics methods are pickled as ``getattr(HistoryBuffer, 'mean')``.
:func:`register_safe_globals` allows exactly these, with a ``getattr`` that
resolves nothing but those methods, so a user never needs
``weights_only=False`` for a file they were handed.
"""
import pickle
import re
from typing import Any, Optional, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'load_checkpoint_file',
    'register_checkpoint_loader', 'register_safe_globals'
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled global that could run code on load."""


class CorruptCheckpointError(ValueError):
    """A file is not a checkpoint torch can read (truncated or corrupt)."""


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
    """
    register_safe_globals()
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True, **kwargs)
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
            raise CorruptCheckpointError(
                f'{filename!r} is not a readable checkpoint: it is '
                'truncated, corrupt, or a plain pickle rather than a file '
                'written by torch.save') from err
        raise UnsafeCheckpointError(
            f'refusing to load {filename!r}: it holds a pickled object '
            'outside the tensors, containers, numpy arrays and mmengine '
            'log buffers that checkpoints need, and unpickling it could run '
            f"code ({found.group(1).rstrip('. ')}). Load it with "
            'torch.load(weights_only=False) yourself only if you trust its '
            'author.') from err
    except (RuntimeError, EOFError, KeyError, ValueError) as err:
        raise CorruptCheckpointError(
            f'{filename!r} is not a readable checkpoint (truncated, corrupt '
            f'or not written by torch.save): {type(err).__name__}: '
            f'{err}') from err


def _load_from_local(filename: str, map_location=None) -> Any:
    import os.path as osp
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
    import os
    import os.path as osp
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
