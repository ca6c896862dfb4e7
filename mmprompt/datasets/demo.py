# Copyright (c) mmprompt contributors. All rights reserved.
"""The embedded demo's data: coloured shapes, generated on first use.

15 classes (5 colours x 3 shapes), each a folder of small PNG images, plus
a split file in the original CoOp format made the way CoOp makes its own
(50/20/30 per class), and a tiny CLIP in open_clip's weight format. Real
files through the real loaders: only their content is synthetic.

Real CLIP weights cannot be shipped or downloaded here, and a random CLIP
knows nothing: its image features barely differ between images. So the
demo's tiny CLIP gets a few seconds of "pretraining" in miniature: its image
tower is aligned with the (random, frozen) text features of
``'a photo of a {class}.'`` for all 15 classes, on images generated apart
from the dataset. Like CLIP, it then knows every class a little, zero-shot,
and prompt learning on the base classes has something to build on.
"""
import os
import os.path as osp
import random
import shutil
import tempfile
from typing import Dict

import numpy as np
from mmengine.logging import print_log

from .utils import read_and_split_data, write_split_file

__all__ = ['DEMO_CLASSES', 'prepare_demo_data', 'pretrain_demo_clip']

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

PRETRAINING_CAPTIONS = ('{}', 'the {} shape', 'a drawing: {}!')
SPLIT_FILE = 'split_zhou_Shapes.json'
CLIP_FILE = 'mmprompt-tiny-vit_shapes.pt'


def _draw(colour: str, shape: str, rng: np.random.Generator, size: int):
    from PIL import Image, ImageDraw
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


def pretrain_demo_clip(seed: int = 0,
                       image_size: int = 40,
                       images_per_class: int = 40,
                       epochs: int = 15):
    """A tiny CLIP whose image tower is aligned with its text tower on the
    demo's classes (a few seconds on a CPU; see the module docstring).

    Args:
        seed (int): Seed of the weights and of the images. Defaults to 0.
        image_size (int): Side of the generated images. Defaults to 40.
        images_per_class (int): Pretraining images per class (generated
            apart from the dataset's). Defaults to 40.
        epochs (int): Passes over them. Defaults to 15.

    Returns:
        nn.Module: The open_clip model, in eval mode.
    """
    import open_clip
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from mmprompt.testing import random_tiny_clip
    model = random_tiny_clip('mmprompt-tiny-vit', seed=seed)
    side = model.visual.image_size[0]
    rng = np.random.default_rng(seed + 1000)
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    images, labels = [], []
    for label, name in enumerate(DEMO_CLASSES):
        colour, shape = name.split('_')
        for _ in range(images_per_class):
            image = _draw(colour, shape, rng, image_size).resize((side, side),
                                                                 Image.BICUBIC)
            images.append((np.asarray(image) / 255. - mean) / std)
            labels.append(label)
    images = torch.tensor(np.stack(images), dtype=torch.float32)
    images = images.permute(0, 3, 1, 2)
    labels = torch.tensor(labels)
    tokenizer = open_clip.get_tokenizer('mmprompt-tiny-vit')
    # Captions unlike the prompts mmprompt starts from, as CLIP's web
    # captions are: hand-written prompts are then a fair but imperfect
    # guess, which prompt learning can improve on.
    with torch.no_grad():
        text = sum(
            F.normalize(
                model.encode_text(
                    tokenizer([
                        caption.format(n.replace('_', ' '))
                        for n in DEMO_CLASSES
                    ])),
                dim=-1) for caption in PRETRAINING_CAPTIONS)
        text = F.normalize(text, dim=-1)
        scale = model.logit_scale.exp()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.visual.parameters(), lr=2e-3, weight_decay=0.05)
    # Left in eval mode: this ViT has no dropout or batch statistics.
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 64):
            index = order[start:start + 64]
            feats = F.normalize(model.encode_image(images[index]), dim=-1)
            loss = F.cross_entropy(scale * feats @ text.t(), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def prepare_demo_data(root: str,
                      images_per_class: int = 60,
                      image_size: int = 40,
                      seed: int = 0) -> Dict[str, str]:
    """Write the demo dataset and tiny CLIP under ``root`` unless present.

    Layout (as the original's own datasets)::

        root/images/<colour>_<shape>/<colour>_<shape>_<i>.png
        root/split_zhou_Shapes.json
        root/mmprompt-tiny-vit_shapes.pt

    Args:
        root (str): The data folder. Existing complete data is reused; a
            folder is never half-written (it is built aside and renamed).
        images_per_class (int): Images per class. Defaults to 60.
        image_size (int): Side of each image. Defaults to 40.
        seed (int): Seed of the images, the split and the CLIP.
            Defaults to 0.

    Returns:
        dict: Paths of ``data_root``, ``split_file`` and ``clip``.
    """
    root = osp.abspath(root)
    paths = dict(
        data_root=root,
        split_file=osp.join(root, SPLIT_FILE),
        clip=osp.join(root, CLIP_FILE))
    if osp.isfile(paths['split_file']) and osp.isfile(paths['clip']):
        return paths
    if osp.exists(root) and os.listdir(root):
        raise FileExistsError(
            f'{root!r} exists but is not a complete demo dataset (no '
            f'{SPLIT_FILE} or {CLIP_FILE}); remove it or pick another '
            'data root, mmprompt does not overwrite existing folders')
    print_log(f'Generating the demo dataset in {root}', logger='current')
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.mmprompt-demo-', dir=parent)
    try:
        rng = np.random.default_rng(seed)
        for name in DEMO_CLASSES:
            colour, shape = name.split('_')
            folder = osp.join(staging, 'images', name)
            os.makedirs(folder)
            for i in range(images_per_class):
                _draw(colour, shape, rng, image_size).save(
                    osp.join(folder, f'{name}_{i:03d}.png'))
        image_dir = osp.join(staging, 'images')
        splits = read_and_split_data(image_dir, random.Random(seed))
        # Split files hold paths relative to the image folder.
        splits = [[
            item._replace(impath=osp.relpath(item.impath, image_dir))
            for item in items
        ] for items in splits]
        write_split_file(
            dict(zip(('train', 'val', 'test'), splits)),
            osp.join(staging, SPLIT_FILE))
        from mmprompt.testing import save_open_clip_weights
        save_open_clip_weights(
            pretrain_demo_clip(seed, image_size), osp.join(staging, CLIP_FILE))
        if osp.exists(root):
            os.rmdir(root)  # empty, checked above
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return paths
