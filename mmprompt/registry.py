# Copyright (c) mmprompt contributors. All rights reserved.
"""Registries of mmprompt, children of mmpretrain's.

Modules registered here live under the scope ``'mmprompt'``. Inside that
scope ``Caltech101`` or ``ImageNet`` mean the CoOp-split datasets of this
package, while mmpretrain's own classes of the same names stay reachable as
``'mmpretrain.Caltech101'``. Everything mmprompt does not define (transforms,
metrics, data preprocessors, optimizers, samplers, loops) resolves through
the parent.
"""
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'BATCH_AUGMENTS', 'TASK_UTILS',
    'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS'
]


def _child(name: str, locations: list = ()) -> Registry:
    """A registry under scope 'mmprompt' whose parent is mmpretrain's."""
    parent = getattr(mmpretrain_registry, name)
    return Registry(
        parent.name,
        parent=parent,
        scope='mmprompt',
        locations=list(locations))


RUNNERS = _child('RUNNERS')
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS')
LOOPS = _child('LOOPS')
HOOKS = _child('HOOKS', ['mmprompt.engine'])
LOG_PROCESSORS = _child('LOG_PROCESSORS')
OPTIMIZERS = _child('OPTIMIZERS')
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS')
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS')
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS', ['mmprompt.engine'])
DATASETS = _child('DATASETS', ['mmprompt.datasets'])
DATA_SAMPLERS = _child('DATA_SAMPLERS')
TRANSFORMS = _child('TRANSFORMS', ['mmprompt.datasets'])
MODELS = _child('MODELS', ['mmprompt.models'])
MODEL_WRAPPERS = _child('MODEL_WRAPPERS')
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS')
BATCH_AUGMENTS = _child('BATCH_AUGMENTS')
TASK_UTILS = _child('TASK_UTILS')
METRICS = _child('METRICS', ['mmprompt.evaluation'])
EVALUATORS = _child('EVALUATORS')
VISUALIZERS = _child('VISUALIZERS')
VISBACKENDS = _child('VISBACKENDS')
