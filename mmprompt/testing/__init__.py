# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers that generate tiny fixtures: CLIP weight files in every format and
tiny prompt models."""
from .clip_files import (random_tiny_clip, randomize_biases_,
                         save_open_clip_weights, save_openai_state_dict,
                         save_openai_torchscript)
from .models import tiny_prompt_classifier

__all__ = [
    'random_tiny_clip', 'randomize_biases_', 'save_open_clip_weights',
    'save_openai_state_dict', 'save_openai_torchscript',
    'tiny_prompt_classifier'
]
