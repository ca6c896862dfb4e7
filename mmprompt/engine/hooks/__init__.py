# Copyright (c) mmprompt contributors. All rights reserved.
from .checkpoint_fit_hook import CheckpointFitHook
from .checkpoint_hook import SafeCheckpointHook
from .class_names_hook import ClassNamesHook
from .feature_cache_hook import FeatureCacheHook
from .finite_loss_hook import FiniteLossHook
from .prompt_aggregation_hook import (GaussianPromptAggregationHook,
                                      gaussian_epoch_weights)
from .test_progress_hook import TestProgressHook

__all__ = [
    'CheckpointFitHook', 'ClassNamesHook', 'FeatureCacheHook',
    'FiniteLossHook', 'GaussianPromptAggregationHook', 'SafeCheckpointHook',
    'TestProgressHook', 'gaussian_epoch_weights'
]
