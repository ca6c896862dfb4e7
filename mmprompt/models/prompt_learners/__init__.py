# Copyright (c) mmprompt contributors. All rights reserved.
from .base import BasePromptLearner
from .cocoop import CoCoOpPromptLearner
from .coop import CoOpPromptLearner
from .deep import (DeepLanguagePromptLearner, DeepPromptLearner,
                   IVLPPromptLearner, MaPLePromptLearner, VPTDeepPromptLearner)
from .prograd import ProGradPromptLearner
from .prompts import LAYOUTS, ClassTokens, Prompts

__all__ = [
    'BasePromptLearner', 'CoCoOpPromptLearner', 'CoOpPromptLearner',
    'ClassTokens', 'DeepLanguagePromptLearner', 'DeepPromptLearner',
    'IVLPPromptLearner', 'LAYOUTS', 'MaPLePromptLearner',
    'ProGradPromptLearner', 'Prompts', 'VPTDeepPromptLearner'
]
