# Copyright (c) mmprompt contributors. All rights reserved.
from .inference import ImageInput, PromptInferencer

__all__ = ['ImageInput', 'PromptInferencer']
