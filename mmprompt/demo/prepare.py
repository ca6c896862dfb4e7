# Copyright (c) mmprompt contributors. All rights reserved.
"""Write the embedded demo's data folder once: dataset and tiny CLIP."""
import os
import os.path as osp
import shutil
import uuid
from typing import Dict

from mmengine.logging import print_log

from mmprompt.testing import save_open_clip_weights
from .shapes import write_shapes_dataset
from .tiny_clip import pretrain_demo_clip

__all__ = ['CLIP_FILE', 'SPLIT_FILE', 'prepare_demo_data']

SPLIT_FILE = 'split_zhou_Shapes.json'
CLIP_FILE = 'mmprompt-tiny-vit_shapes.pt'


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
    # mkdir, not mkdtemp: the folder gets the umask's mode (mkdtemp's 0700
    # would lock colleagues out of a shared data folder).
    staging = osp.join(parent, f'.mmprompt-demo-{uuid.uuid4().hex}')
    os.mkdir(staging)
    try:
        write_shapes_dataset(staging, osp.join(staging, SPLIT_FILE),
                             images_per_class, image_size, seed)
        save_open_clip_weights(
            pretrain_demo_clip(seed, image_size), osp.join(staging, CLIP_FILE))
        if osp.exists(root):
            os.rmdir(root)  # empty, checked above
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return paths
