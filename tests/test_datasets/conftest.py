# Copyright (c) mmprompt contributors. All rights reserved.
"""Tiny dataset trees in the original layouts, and the golden files."""
import json
import shutil
from pathlib import Path
from typing import Dict

import pytest
from dataset_trees import make_image
from golden_testing import golden_path


@pytest.fixture(scope='session')
def golden_protocol() -> Path:
    return golden_path('protocol', 'split_zhou_Toy.json').parent


@pytest.fixture
def toy_pets(tmp_path, golden_protocol) -> Path:
    """OxfordPets layout whose split file is the golden toy split."""
    root = tmp_path / 'oxford_pets'
    (root / 'images').mkdir(parents=True)
    shutil.copy(golden_protocol / 'split_zhou_Toy.json',
                root / 'split_zhou_OxfordPets.json')
    return root


@pytest.fixture
def split_tree(tmp_path) -> Dict[str, object]:
    """A user's split file with 3 classes and its images."""
    root = tmp_path / 'mine'
    classes = ['red_fox', 'Grey Wolf', 'dog']
    content = {'train': [], 'val': [], 'test': []}
    for label, name in enumerate(classes):
        for split, n in (('train', 5), ('val', 2), ('test', 3)):
            for i in range(n):
                rel = f'{name}/{split}_{i}.png'
                make_image(root / 'imgs' / rel)
                content[split].append([rel, label, name])
    (root / 'split.json').write_text(json.dumps(content))
    return dict(root=root, classes=classes, content=content)
