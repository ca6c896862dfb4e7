# Copyright (c) mmprompt contributors. All rights reserved.
from .adapter_classifier import AdapterClassifier, AdapterDataPreprocessor
from .prompt_classifier import CLIP_MEAN, CLIP_STD, PromptClassifier

__all__ = [
    'AdapterClassifier', 'AdapterDataPreprocessor', 'CLIP_MEAN', 'CLIP_STD',
    'PromptClassifier'
]
