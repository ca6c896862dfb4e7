# Copyright (c) mmprompt contributors. All rights reserved.
from .base import BasePromptHead, CLIPHead
from .cocoop_head import CoCoOpHead
from .coop_head import CoOpHead
from .templates import DATASET_TEMPLATES, TEMPLATE_SETS, resolve_templates
from .text_bank import AGGREGATIONS, TextFeatureBank
from .zero_shot_head import ZeroShotHead

__all__ = [
    'AGGREGATIONS', 'TextFeatureBank', 'BasePromptHead', 'CLIPHead',
    'CoCoOpHead', 'CoOpHead', 'DATASET_TEMPLATES', 'TEMPLATE_SETS',
    'ZeroShotHead', 'resolve_templates'
]
