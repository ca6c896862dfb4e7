# Copyright (c) mmprompt contributors. All rights reserved.
from .base import BasePromptLearner
from .cocoop import CoCoOpPromptLearner
from .coop import CoOpPromptLearner

__all__ = ['BasePromptLearner', 'CoCoOpPromptLearner', 'CoOpPromptLearner']
