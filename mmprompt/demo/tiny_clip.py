# Copyright (c) mmprompt contributors. All rights reserved.
"""The embedded demo's CLIP: a tiny one, "pretrained" in a few seconds.

Real CLIP weights cannot be shipped or downloaded here, and a random CLIP
knows nothing: its image features barely differ between images. So the
demo's tiny CLIP gets a few seconds of "pretraining" in miniature: its image
tower is aligned with the (random, frozen) text features of captions of all
15 classes, on images generated apart from the dataset. Like CLIP, it then
knows every class a little, zero-shot, and prompt learning on the base
classes has something to build on.
"""
import numpy as np
import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from mmprompt.testing import random_tiny_clip
from .shapes import DEMO_CLASSES, draw_shape

__all__ = ['PRETRAINING_CAPTIONS', 'pretrain_demo_clip']

PRETRAINING_CAPTIONS = ('{}', 'the {} shape', 'a drawing: {}!')


def pretrain_demo_clip(seed: int = 0,
                       image_size: int = 40,
                       images_per_class: int = 40,
                       epochs: int = 15) -> nn.Module:
    """A tiny CLIP whose image tower is aligned with its text tower on the
    demo's classes (a few seconds on a CPU; see the module docstring).

    Args:
        seed (int): Seed of the weights and of the images. Defaults to 0.
        image_size (int): Side of the generated images. Defaults to 40.
        images_per_class (int): Pretraining images per class (generated
            apart from the dataset's). Defaults to 40.
        epochs (int): Passes over them. Defaults to 15.

    Returns:
        nn.Module: The open_clip model ``mmprompt-tiny-vit``, in eval mode.
    """
    model = random_tiny_clip('mmprompt-tiny-vit', seed=seed)
    side = model.visual.image_size[0]
    rng = np.random.default_rng(seed + 1000)
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    images, labels = [], []
    for label, name in enumerate(DEMO_CLASSES):
        colour, shape = name.split('_')
        for _ in range(images_per_class):
            image = draw_shape(colour, shape, rng, image_size).resize(
                (side, side), Image.BICUBIC)
            images.append((np.asarray(image) / 255. - mean) / std)
            labels.append(label)
    images = torch.tensor(np.stack(images), dtype=torch.float32)
    images = images.permute(0, 3, 1, 2)  # (N, 3, side, side)
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
        text = F.normalize(text, dim=-1)  # (15, D)
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
