# Copyright (c) mmprompt contributors. All rights reserved.
from .plain import PlainTextEncoder
from .prefix_cached import PrefixCachedTextEncoder

__all__ = ['PlainTextEncoder', 'PrefixCachedTextEncoder']
