# Copyright (c) mmprompt contributors. All rights reserved.
from .base_new import base_new_summary, harmonic_mean
from .metrics import PerClassMetric, per_class_scores
from .prediction_dumper import PredictionDumper

__all__ = [
    'PerClassMetric', 'PredictionDumper', 'base_new_summary', 'harmonic_mean',
    'per_class_scores'
]
