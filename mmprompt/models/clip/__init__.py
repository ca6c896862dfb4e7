# Copyright (c) mmprompt contributors. All rights reserved.
from .openclip import OpenCLIP
from .weights import looks_like_openai_state_dict, read_clip_weights

__all__ = ['OpenCLIP', 'looks_like_openai_state_dict', 'read_clip_weights']
