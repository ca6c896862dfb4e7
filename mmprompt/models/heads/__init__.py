# Copyright (c) mmprompt contributors. All rights reserved.
from .base import BasePromptHead, CLIPHead
from .cocoop_head import CoCoOpHead
from .coop_head import CoOpHead
from .deep_prompt_head import (DeepPromptHead, VPTDeepHead,
                               encode_prompted_images)
from .kgcoop_head import KgCoOpHead
from .prograd_head import LossTerms, ProGradHead
from .promptsrc_head import PromptSRCHead
from .templates import (DATASET_TEMPLATES, KGCOOP_TEMPLATES, PROGRAD_TEMPLATES,
                        PROMPTSRC_TEMPLATES, TEMPLATE_SETS, TEMPLATE_TABLES,
                        resolve_templates)
from .text_bank import AGGREGATIONS, TextFeatureBank
from .zero_shot_head import ZeroShotHead

__all__ = [
    'AGGREGATIONS', 'TextFeatureBank', 'BasePromptHead', 'CLIPHead',
    'CoCoOpHead', 'CoOpHead', 'DATASET_TEMPLATES', 'DeepPromptHead',
    'KGCOOP_TEMPLATES', 'KgCoOpHead', 'LossTerms', 'PROGRAD_TEMPLATES',
    'ProGradHead', 'PROMPTSRC_TEMPLATES', 'PromptSRCHead', 'TEMPLATE_SETS',
    'TEMPLATE_TABLES', 'VPTDeepHead', 'ZeroShotHead', 'encode_prompted_images',
    'resolve_templates'
]
