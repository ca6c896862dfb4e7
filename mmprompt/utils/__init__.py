# Copyright (c) mmprompt contributors. All rights reserved.
from .checkpoint import (ATOMIC_BACKEND, CHECKPOINT_PATTERNS, LEARNER_PREFIX,
                         POINTER, AtomicLocalBackend, CheckpointMismatchError,
                         CheckpointWriteError, CorruptCheckpointError,
                         UnsafeCheckpointError, atomic_write,
                         check_checkpoint_fits, checkpoint_filter_fn,
                         convert_coop_state_dict, existing_checkpoints,
                         find_last_valid_checkpoint, is_valid_checkpoint,
                         load_checkpoint_file, original_format, read_pointer,
                         register_checkpoint_loader, register_safe_globals,
                         remove_partial_writes, repoint, strip_prefix)
from .config import stale_copies

__all__ = [
    'ATOMIC_BACKEND', 'CHECKPOINT_PATTERNS', 'LEARNER_PREFIX', 'POINTER',
    'AtomicLocalBackend', 'CheckpointMismatchError', 'CheckpointWriteError',
    'CorruptCheckpointError', 'UnsafeCheckpointError', 'atomic_write',
    'check_checkpoint_fits', 'checkpoint_filter_fn', 'convert_coop_state_dict',
    'existing_checkpoints', 'find_last_valid_checkpoint',
    'is_valid_checkpoint', 'load_checkpoint_file', 'original_format',
    'read_pointer', 'register_checkpoint_loader', 'register_safe_globals',
    'remove_partial_writes', 'repoint', 'stale_copies', 'strip_prefix'
]
