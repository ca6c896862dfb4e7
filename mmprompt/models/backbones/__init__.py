# Copyright (c) mmprompt contributors. All rights reserved.
from .openclip_image import OpenCLIPImageBackbone

__all__ = ['OpenCLIPImageBackbone']
