# Copyright (c) mmprompt contributors. All rights reserved.
"""The embedded demo's dataset: coloured shapes in CoOp's own format.

15 classes (5 colours x 3 shapes), each a folder of small PNG images, plus a
split file in the original CoOp format made the way CoOp makes its own
(50/20/30 per class). Real files through the real loaders: only their
content is synthetic.
"""
import os
import os.path as osp
import random
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw

from mmprompt.datasets.utils import read_and_split_data, write_split_file

__all__ = ['DEMO_CLASSES', 'draw_shape', 'write_shapes_dataset']

_COLOURS = {
    'red': (220, 30, 30),
    'green': (30, 170, 40),
    'blue': (30, 60, 220),
    'yellow': (230, 215, 40),
    'purple': (140, 40, 180),
}
_SHAPES = ('circle', 'square', 'triangle')
#: The demo's class names, in label order (sorted folder names).
DEMO_CLASSES = sorted(f'{c}_{s}' for c in _COLOURS for s in _SHAPES)


def draw_shape(colour: str, shape: str, rng: np.random.Generator,
               size: int) -> Image.Image:
    """Draw one shape of a jittered colour on a random dark background.

    Args:
        colour (str): One of the demo's colours, e.g. ``'red'``.
        shape (str): ``'circle'``, ``'square'`` or ``'triangle'``.
        rng (np.random.Generator): Source of the background, position,
            size and colour jitter; the same state draws the same image.
        size (int): Side of the square image in pixels.

    Returns:
        PIL.Image.Image: An RGB image of ``size`` x ``size``.
    """
    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    image = Image.new('RGB', (size, size), background)
    draw = ImageDraw.Draw(image)
    radius = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(radius, size - radius, 2))
    fill = tuple(
        int(np.clip(v + rng.integers(-25, 26), 0, 255))
        for v in _COLOURS[colour])
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    if shape == 'circle':
        draw.ellipse(box, fill=fill)
    elif shape == 'square':
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius),
                      (cx + radius, cy + radius)],
                     fill=fill)
    return image


def write_shapes_dataset(root: str, split_file: str, images_per_class: int,
                         image_size: int, seed: int) -> Tuple[str, str]:
    """Write the images under ``root/images`` and CoOp's split file.

    Args:
        root (str): An existing, empty folder.
        split_file (str): Where the split file goes.
        images_per_class (int): Images per class.
        image_size (int): Side of each image.
        seed (int): Seed of the images and of the split.

    Returns:
        tuple[str, str]: The image folder and the split file.
    """
    rng = np.random.default_rng(seed)
    image_dir = osp.join(root, 'images')
    for name in DEMO_CLASSES:
        colour, shape = name.split('_')
        folder = osp.join(image_dir, name)
        os.makedirs(folder)
        for i in range(images_per_class):
            draw_shape(colour, shape, rng, image_size).save(
                osp.join(folder, f'{name}_{i:03d}.png'))
    splits = read_and_split_data(image_dir, random.Random(seed))
    # Split files hold paths relative to the image folder.
    splits = [[
        item._replace(impath=osp.relpath(item.impath, image_dir))
        for item in items
    ] for items in splits]
    write_split_file(dict(zip(('train', 'val', 'test'), splits)), split_file)
    return image_dir, split_file
