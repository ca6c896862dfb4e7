# Copyright (c) mmprompt contributors. All rights reserved.
from .base import (SEARCH_SPLITS, BaseAdapter, FeatureSet, check_search_split,
                   one_hot)
from .tip_adapter import TipAdapter, tip_search_grid

__all__ = [
    'BaseAdapter', 'FeatureSet', 'SEARCH_SPLITS', 'check_search_split',
    'one_hot', 'TipAdapter', 'tip_search_grid'
]
