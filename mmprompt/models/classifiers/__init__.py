# Copyright (c) mmprompt contributors. All rights reserved.
from .prompt_classifier import CLIP_MEAN, CLIP_STD, PromptClassifier

__all__ = ['CLIP_MEAN', 'CLIP_STD', 'PromptClassifier']
