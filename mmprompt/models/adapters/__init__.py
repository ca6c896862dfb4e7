# Copyright (c) mmprompt contributors. All rights reserved.
from .base import (SEARCH_SPLITS, BaseAdapter, FeatureSet, check_search_split,
                   one_hot)
from .clip_adapter import CLIPAdapter
from .linear_probe import (COARSE_C, LPCLIP_VAL_SHOTS, LogisticRegressionProbe,
                           import_sklearn, lpclip_fewshot_indices)
from .lpp import LPPlusPlus
from .tip_adapter import TipAdapter, tip_search_grid

__all__ = [
    'BaseAdapter', 'FeatureSet', 'SEARCH_SPLITS', 'check_search_split',
    'one_hot', 'TipAdapter', 'tip_search_grid', 'CLIPAdapter', 'COARSE_C',
    'LPCLIP_VAL_SHOTS', 'LogisticRegressionProbe', 'import_sklearn',
    'lpclip_fewshot_indices', 'LPPlusPlus'
]
