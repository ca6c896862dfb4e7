# Copyright (c) mmprompt contributors. All rights reserved.
from .coop_checkpoint import (LEARNER_PREFIX, convert_coop_state_dict,
                              is_original_checkpoint)

__all__ = [
    'LEARNER_PREFIX', 'convert_coop_state_dict', 'is_original_checkpoint'
]
