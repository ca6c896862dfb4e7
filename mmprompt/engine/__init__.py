# Copyright (c) mmprompt contributors. All rights reserved.
from .hooks import ClassNamesHook
from .schedulers import ConstantWarmupCosineLR

__all__ = ['ClassNamesHook', 'ConstantWarmupCosineLR']
