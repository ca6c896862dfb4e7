# Copyright (c) mmprompt contributors. All rights reserved.
"""Registries of mmprompt, children of mmpretrain's.

Modules registered here live under the scope ``'mmprompt'``. Inside that
scope ``Caltech101`` or ``ImageNet`` mean the CoOp-split datasets of this
package, while mmpretrain's own classes of the same names stay reachable as
``'mmpretrain.Caltech101'``. Everything mmprompt does not define (transforms,
metrics, data preprocessors, optimizers, samplers, loops) resolves through
the parent.

:func:`registry_hint` turns mmengine's "X is not in the registry" into a
message with the registered names close to X.
"""
import difflib
import re
from typing import List, Optional

from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'BATCH_AUGMENTS', 'TASK_UTILS',
    'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS', 'registry_hint'
]


def _child(name: str, locations: list = ()) -> Registry:
    """A registry under scope 'mmprompt' whose parent is mmpretrain's.

    It also imports the parent's modules on first use: mmengine looks a
    name up in a parent's registered classes without importing the parent's
    modules, so that mmpretrain's ``UniversalVisualizer`` or
    ``VisualizationHook`` would otherwise be found in mmprompt's scope only
    once something else had imported ``mmpretrain.visualization`` or
    ``mmpretrain.engine``.
    """
    parent = getattr(mmpretrain_registry, name)
    inherited = [loc for loc in parent._locations if loc not in locations]
    return Registry(
        parent.name,
        parent=parent,
        scope='mmprompt',
        locations=list(locations) + inherited)


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

_NOT_REGISTERED = re.compile(
    r"(?P<name>[^\s'\"]+) is not in the (?P<scope>[\w.]+)::"
    r'(?P<registry>[\w ]+?) registry')


def _visible_names(registry: Registry) -> List[str]:
    """Names a config can use in ``registry``'s scope: its own and its
    ancestors', and ``scope.Name`` for the other scopes."""
    names = set()
    node = registry
    while node is not None:
        try:
            node.import_from_location()
        except Exception:  # an optional package missing: list the rest
            pass
        names.update(node.module_dict)
        node = node.parent
    root = registry.root

    def walk(node):
        for scope, child in node.children.items():
            if child is not registry:
                names.update(f'{scope}.{n}' for n in child.module_dict)
            walk(child)

    walk(root)
    return sorted(names)


def registry_hint(error: BaseException) -> Optional[str]:
    """Close registered names for mmengine's "X is not in the registry".

    ``tools/train.py`` and ``tools/test.py`` add it to the ``KeyError`` of
    an unknown ``type`` in a config.

    Args:
        error (BaseException): Any exception.

    Returns:
        str | None: The error's message with up to five registered names
        close to the unknown one (its own registry and its parents',
        scoped names too), or None if ``error`` is not such an error.

    Examples:
        >>> try:
        ...     MODELS.build(dict(type='CoOpHeed'))
        ... except KeyError as err:
        ...     print(registry_hint(err))
        'CoOpHeed' is not a registered model type in the 'mmprompt' scope.
        Did you mean 'CoOpHead', ...
    """
    message = error.args[0] if error.args else ''
    found = _NOT_REGISTERED.search(str(message))
    if found is None:
        return None
    name, kind = found.group('name'), found.group('registry')
    var, registry = next(
        ((v, r) for v, r in globals().items() if isinstance(r, Registry)
         and r.name == kind and r.scope == 'mmprompt'), (None, None))
    if registry is None:
        return None
    names = _visible_names(registry)
    by_lower = {}
    for n in names:
        by_lower.setdefault(n.lower(), n)
    close = difflib.get_close_matches(
        name.lower(), list(by_lower), n=5, cutoff=0.6)
    # 'mmpretrain.ImageClasifier' or 'ImageClasifier' against unscoped
    # names too.
    short = {k.rsplit('.', 1)[-1]: k for k in by_lower if '.' not in k}
    close += [
        short[n] for n in difflib.get_close_matches(
            name.rsplit('.', 1)[-1].lower(), list(short), n=5, cutoff=0.6)
    ]
    close = list(dict.fromkeys(by_lower[c] for c in close))[:5]
    hint = (f' Did you mean {", ".join(repr(c) for c in close)}?'
            if close else ' No registered name is close to it.')
    prefix = str(message)[:found.start()].strip(' :\'"')
    where = f' (while building {prefix})' if prefix else ''
    return (f'{name!r} is not a registered {kind} type in the '
            f"{found.group('scope')!r} scope{where}.{hint} The {len(names)} "
            f'names a config can use are in mmprompt.registry.{var} and its '
            'parents; a class of your own needs '
            f'@{var}.register_module() in a module that the config imports '
            "with custom_imports = dict(imports=['your.module']).")
