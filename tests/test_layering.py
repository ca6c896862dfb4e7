# Copyright (c) mmprompt contributors. All rights reserved.
"""No import runs upward or sideways between mmprompt's layers.

    apis, demo, testing                 may import anything below
    datasets | models | engine | evaluation   side by side, none imports
                                              another
    utils, registry, version            import none of the above

Every ``import`` and ``from ... import`` of every file under ``mmprompt/``
counts, at module level or inside a function, relative or absolute, read
with ``ast`` (nothing is imported). A bare ``import mmprompt`` counts as
importing every layer, since the package's ``__init__`` imports them all.
Registry ``locations`` strings are mmengine's lazy registration, not
imports, and are not counted.
"""
import ast
from collections import defaultdict
from functools import lru_cache
from itertools import product
from pathlib import Path
from typing import Dict, List, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmprompt'

CORE = ('datasets', 'models', 'engine', 'evaluation')
BOTTOM = ('utils', 'registry', 'version')
TOP = ('apis', 'demo', 'testing')
ROOT = '<mmprompt>'  # mmprompt/__init__.py

# (importer, imported) pairs that break the rule in today's code, while
# their modules are being refactored: pair -> the offending import. Each
# is a strict xfail, so fixing it fails the test until the entry goes.
KNOWN_VIOLATIONS: Dict[tuple, str] = {}


def _layer(module: str) -> str:
    """``mmprompt.models.heads.base`` -> ``models``."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ROOT


def _imported_modules(path: Path, package_dir: Path = PACKAGE) -> List[tuple]:
    """``(lineno, module)`` for each mmprompt module ``path`` imports."""
    parts = path.relative_to(package_dir.parent).with_suffix('').parts
    package = parts[:-1]  # for __init__.py the package itself
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                base += node.module.split('.') if node.module else []
                module = '.'.join(base)
            else:
                module = node.module
            if module == 'mmprompt':
                # ``from mmprompt import models``: the names are modules.
                found += [(node.lineno, f'mmprompt.{alias.name}')
                          for alias in node.names]
            else:
                found.append((node.lineno, module))
    return [(lineno, module) for lineno, module in found
            if module == 'mmprompt' or module.startswith('mmprompt.')]


@lru_cache()
def _imports_by_layer() -> Dict[tuple, List[str]]:
    """(importer layer, imported layer) -> ``'file:line: module'``."""
    edges = defaultdict(list)
    for path in sorted(PACKAGE.rglob('*.py')):
        rel = path.relative_to(PACKAGE.parent)
        importer = ROOT if rel.as_posix() == 'mmprompt/__init__.py' else \
            _layer('.'.join(rel.with_suffix('').parts))
        for lineno, module in _imported_modules(path):
            targets = (CORE +
                       BOTTOM) if module == 'mmprompt' else [_layer(module)]
            for target in targets:
                if target != importer:
                    edges[importer, target].append(
                        f'{rel.as_posix()}:{lineno}: {module}')
    return edges


def _layers_on_disk() -> Set[str]:
    return {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / '__init__.py').is_file()) or (
            p.suffix == '.py' and p.name != '__init__.py')
    }


def _forbidden_pairs() -> List[tuple]:
    pairs = [(a, b) for a, b in product(CORE, CORE) if a != b]
    pairs += [(a, b) for a, b in product(CORE + BOTTOM, TOP)]
    pairs += [(a, b) for a, b in product(BOTTOM, CORE)]
    pairs += [(ROOT, b) for b in TOP]
    return pairs


def _params() -> list:
    params = []
    for pair in _forbidden_pairs():
        marks = []
        if pair in KNOWN_VIOLATIONS:
            marks.append(
                pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[pair]))
        params.append(
            pytest.param(*pair, marks=marks, id=f'{pair[0]}-{pair[1]}'))
    return params


def test_every_layer_is_placed():
    """A new subpackage must be given its place in the rule above."""
    placed = set(CORE + BOTTOM + TOP)
    assert _layers_on_disk() <= placed, (
        f'mmprompt/{sorted(_layers_on_disk() - placed)} not in any layer '
        'of tests/test_layering.py')


@pytest.mark.parametrize('importer,imported', _params())
def test_no_import_across_layers(importer, imported):
    offending = _imports_by_layer().get((importer, imported), [])
    assert not offending, (f'mmprompt.{importer} must not import '
                           f'mmprompt.{imported}:\n' + '\n'.join(offending))


def test_the_check_sees_imports(tmp_path):
    """The parser finds the import forms the rule is about."""
    package = tmp_path / 'mmprompt' / 'datasets'
    package.mkdir(parents=True)
    source = package / 'demo.py'
    source.write_text('import mmprompt.models.clip\n'
                      'from ..testing import random_tiny_clip\n'
                      'from mmprompt import engine, registry\n'
                      'from .utils import read_split_file\n'
                      'def f():\n'
                      '    from mmprompt.apis import PromptInferencer\n'
                      'import mmprompt\n'
                      'import numpy\n')
    found = _imported_modules(source, tmp_path / 'mmprompt')
    assert sorted(found) == [(1, 'mmprompt.models.clip'),
                             (2, 'mmprompt.testing'), (3, 'mmprompt.engine'),
                             (3, 'mmprompt.registry'),
                             (4, 'mmprompt.datasets.utils'),
                             (6, 'mmprompt.apis'), (7, 'mmprompt')]
