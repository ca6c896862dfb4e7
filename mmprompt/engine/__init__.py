# Copyright (c) mmprompt contributors. All rights reserved.
from mmprompt.registry import registry_hint
from mmprompt.utils import (CheckpointMismatchError, check_checkpoint_fits,
                            existing_checkpoints, find_last_valid_checkpoint)
from .distributed import (accelerator_available, setup_cpu_distributed,
                          teardown_distributed)
from .feature_extraction import extract_view_features, prepare_features
from .hooks import (CheckpointFitHook, ClassNamesHook, FeatureCacheHook,
                    FiniteLossHook, GaussianPromptAggregationHook,
                    SafeCheckpointHook, TestProgressHook,
                    gaussian_epoch_weights)
from .loops import CHOICES_FILE, AdapterTrainLoop
from .optim_wrappers import (AMP_OPTIM_WRAPPERS, ProGradAmpOptimWrapper,
                             ProGradOptimWrapper, prograd_project)
from .rng import get_rng_state, set_rng_state
from .schedulers import ConstantWarmupCosineLR

__all__ = [
    'CheckpointFitHook', 'ClassNamesHook', 'FiniteLossHook',
    'SafeCheckpointHook', 'TestProgressHook', 'ConstantWarmupCosineLR',
    'GaussianPromptAggregationHook', 'gaussian_epoch_weights',
    'accelerator_available', 'setup_cpu_distributed', 'teardown_distributed',
    'get_rng_state', 'set_rng_state', 'AMP_OPTIM_WRAPPERS',
    'ProGradOptimWrapper', 'ProGradAmpOptimWrapper', 'prograd_project',
    'AdapterTrainLoop', 'CHOICES_FILE', 'FeatureCacheHook',
    'extract_view_features', 'prepare_features'
]
# Importable from here as before; their homes are mmprompt.utils.checkpoint
# and mmprompt.registry.
__all__ += [
    'CheckpointMismatchError', 'check_checkpoint_fits', 'existing_checkpoints',
    'find_last_valid_checkpoint', 'registry_hint'
]
