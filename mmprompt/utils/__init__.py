# Copyright (c) mmprompt contributors. All rights reserved.
from .checkpoint import (CorruptCheckpointError, UnsafeCheckpointError,
                         load_checkpoint_file, register_checkpoint_loader,
                         register_safe_globals)

__all__ = [
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'load_checkpoint_file',
    'register_checkpoint_loader', 'register_safe_globals'
]
