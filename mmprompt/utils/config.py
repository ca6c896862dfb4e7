# Copyright (c) mmprompt contributors. All rights reserved.
"""Checks of the command line's ``--cfg-options`` against a config."""
import inspect
from typing import Any, Dict, Iterator, List, Tuple

from mmengine.config import Config
from mmengine.runner import Runner

__all__ = ['stale_copies']

#: Top-level keys the Runner reads itself: setting them always has effect.
_RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters)


def _leaves(node: Any, path: str = '') -> Iterator[Tuple[str, Any]]:
    """Every scalar of a config, under the dotted key ``--cfg-options``
    takes (list items by index)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f'{path}.{key}' if path else str(key))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _leaves(value, f'{path}.{index}')
    else:
        yield path, node


def _get(node: Any, path: str) -> Any:
    for part in path.split('.'):
        node = node[int(part)] if isinstance(node, (list, tuple)) else \
            node[part]
    return node


def _copied(old: Any, value: Any) -> bool:
    """Whether ``value`` looks made from ``old`` when the config was read:
    equal, or for a string of a path a longer string holding it."""
    if type(value) is not type(old):
        return False
    if value == old:
        return True
    return isinstance(old, str) and '/' in old and old in value


def stale_copies(before: Dict[str, Any], cfg: Config,
                 options: Dict[str, Any]) -> List[str]:
    """Warnings for ``--cfg-options`` that set a top-level variable whose
    value the config copied into other entries when it was read.

    A config is Python: ``data_root = 'data/dtd'`` and then
    ``dataset=dict(data_root=data_root)`` copies the string, so
    ``--cfg-options data_root=/mnt/dtd`` changes the variable and nothing
    that reads it. Each warning names the variable, its old value and every
    entry that still holds that value (or, for a path, a string made from
    it), with the ``--cfg-options`` that set them.

    Only top-level keys that the Runner does not read itself are checked
    (``load_from``, ``work_dir``, ... take effect whatever was copied), and
    only strings and numbers other than 0, 1 and -1; an entry set by the
    options too is not reported.

    Args:
        before (dict): The config as read, before the options
            (``cfg.to_dict()``).
        cfg (Config): The config with the options merged.
        options (dict): The options, as ``DictAction`` parses them.

    Returns:
        list[str]: One warning per stale variable; empty if none.

    Examples:
        >>> from mmengine.config import Config
        >>> cfg = Config(dict(data_root='data/a', test_dataloader=dict(
        ...     dataset=dict(data_root='data/a'))))
        >>> before = cfg.to_dict()
        >>> cfg.merge_from_dict({'data_root': 'data/b'})
        >>> print(stale_copies(before, cfg, {'data_root': 'data/b'})[0])
        --cfg-options data_root='data/b' changes nothing: the config copied \
its old value 'data/a' into other entries when it was read, and \
test_dataloader.dataset.data_root still holds it. Set them instead: \
--cfg-options test_dataloader.dataset.data_root=data/b
    """
    warnings = []
    for key, new in options.items():
        if '.' in key or key in _RUNNER_KEYS or key not in before:
            continue
        old = before[key]
        if isinstance(old, bool) or not isinstance(old, (str, int, float)):
            continue
        if old == new or (not isinstance(old, str) and old in (0, 1, -1)):
            continue
        if isinstance(old, str) and len(old) < 2:
            continue
        stale = []
        for path, value in _leaves(before):
            if path == key or not _copied(old, value):
                continue
            try:
                unchanged = _get(cfg, path) == value
            except (KeyError, IndexError, TypeError, ValueError):
                continue  # the options replaced the entry's parent
            if unchanged:
                fixed = new if value == old else value.replace(old, str(new))
                stale.append((path, fixed))
        if not stale:
            continue
        names = ', '.join(path for path, _ in stale)
        proposed = ' '.join(f'{path}={fixed}' for path, fixed in stale)
        verb = 'holds' if len(stale) == 1 else 'hold'
        warnings.append(
            f'--cfg-options {key}={new!r} changes nothing: the config '
            f'copied its old value {old!r} into other entries when it was '
            f'read, and {names} still {verb} it. Set them instead: '
            f'--cfg-options {proposed}')
    return warnings
