# Copyright (c) mmprompt contributors. All rights reserved.
from . import checkpoint, config, feature_cache
from .checkpoint import *  # noqa: F401,F403
from .config import *  # noqa: F401,F403
from .feature_cache import *  # noqa: F401,F403

__all__ = checkpoint.__all__ + config.__all__ + feature_cache.__all__
