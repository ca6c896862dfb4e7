# Copyright (c) mmprompt contributors. All rights reserved.
from . import checkpoint, config
from .checkpoint import *  # noqa: F401,F403
from .config import *  # noqa: F401,F403

__all__ = checkpoint.__all__ + config.__all__
