# Copyright (c) mmprompt contributors. All rights reserved.
from .distributed import accelerator_available, setup_cpu_distributed
from .hooks import ClassNamesHook
from .reliability import (CheckpointFitHook, CheckpointMismatchError,
                          FiniteLossHook, SafeCheckpointHook,
                          check_checkpoint_fits, existing_checkpoints,
                          find_last_valid_checkpoint, registry_hint)
from .schedulers import ConstantWarmupCosineLR

__all__ = ['ClassNamesHook', 'ConstantWarmupCosineLR']
__all__ += [
    'SafeCheckpointHook', 'FiniteLossHook', 'CheckpointFitHook',
    'CheckpointMismatchError', 'check_checkpoint_fits', 'existing_checkpoints',
    'find_last_valid_checkpoint', 'registry_hint', 'accelerator_available',
    'setup_cpu_distributed'
]
