# Copyright (c) mmprompt contributors. All rights reserved.
"""Registries of mmprompt, children of mmpretrain's.

Modules registered here live under the scope ``'mmprompt'``. Inside that
scope ``Caltech101`` or ``ImageNet`` mean the CoOp-split datasets of this
package, while mmpretrain's own classes of the same names stay reachable as
``'mmpretrain.Caltech101'``. Everything mmprompt does not define (transforms,
metrics, data preprocessors, optimizers, hooks) resolves through the parent.
"""
from mmengine.registry import Registry
from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import METRICS as MMPRETRAIN_METRICS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.registry import PARAM_SCHEDULERS as MMPRETRAIN_PARAM_SCHEDULERS
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS

__all__ = [
    'DATASETS', 'HOOKS', 'METRICS', 'MODELS', 'PARAM_SCHEDULERS', 'TRANSFORMS'
]

MODELS = Registry(
    'model',
    parent=MMPRETRAIN_MODELS,
    scope='mmprompt',
    locations=['mmprompt.models'])
DATASETS = Registry(
    'dataset',
    parent=MMPRETRAIN_DATASETS,
    scope='mmprompt',
    locations=['mmprompt.datasets'])
TRANSFORMS = Registry(
    'transform',
    parent=MMPRETRAIN_TRANSFORMS,
    scope='mmprompt',
    locations=['mmprompt.datasets'])
METRICS = Registry(
    'metric',
    parent=MMPRETRAIN_METRICS,
    scope='mmprompt',
    locations=['mmprompt.evaluation'])
HOOKS = Registry(
    'hook',
    parent=MMPRETRAIN_HOOKS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler',
    parent=MMPRETRAIN_PARAM_SCHEDULERS,
    scope='mmprompt',
    locations=['mmprompt.engine'])
