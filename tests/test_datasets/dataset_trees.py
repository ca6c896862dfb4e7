# Copyright (c) mmprompt contributors. All rights reserved.
"""Helpers that write tiny images and text files for dataset tests."""
from pathlib import Path
from typing import Iterable, List

from PIL import Image


def make_image(path: Path, size=(6, 5), color=(10, 200, 30)) -> Path:
    """Write a tiny image; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', size, color).save(path)
    return path


def make_images(folder: Path, names: Iterable[str]) -> List[Path]:
    return [make_image(folder / name) for name in names]


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{line}\n' for line in lines))
    return path
