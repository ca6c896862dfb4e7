# Copyright (c) mmprompt contributors. All rights reserved.
"""The image pipelines of the original CoOp, as mmpretrain transforms.

The original (Dassl, after 2021-10-09) reads images with
``PIL.Image.open(path).convert('RGB')`` and applies torchvision transforms:

* train: ``RandomResizedCrop(224, scale=(0.08, 1.0), interpolation=BICUBIC)``
  then ``RandomHorizontalFlip()``;
* test: ``Resize(224, BICUBIC)`` of the shorter edge then
  ``CenterCrop(224)``;

then ``ToTensor`` and ``Normalize`` with CLIP's mean and std, which
mmpretrain's ``ClsDataPreprocessor`` does in the model
(``to_rgb=True``, because mmcv's loader returns BGR).

``TEST_PIPELINE`` gives pixel-identical images to the original's test
transform (``tests/test_datasets/test_pipelines.py`` checks it against
torchvision): the pillow decoder without EXIF rotation (PIL's ``open``
ignores it too), ``ResizeEdge``'s truncated long edge and ``CenterCrop``'s
rounded offsets are those of torchvision. The one known difference is an
``'LA'`` (grey + alpha) image, which mmcv composites on a grey canvas while
PIL's ``convert('RGB')`` drops the alpha. ``TRAIN_PIPELINE`` draws crops with
the same algorithm as torchvision (10 attempts, then a central crop), from
numpy's generator instead of torch's.
"""

#: Decoding as the original: PIL, RGB, EXIF orientation ignored.
LOAD_IMAGE = dict(
    type='LoadImageFromFile',
    imdecode_backend='pillow',
    color_type='color_ignore_orientation')

#: The original's train transform (before normalisation).
TRAIN_PIPELINE = [
    LOAD_IMAGE,
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        aspect_ratio_range=(3. / 4., 4. / 3.),
        max_attempts=10,
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

#: The original's test transform (before normalisation).
TEST_PIPELINE = [
    LOAD_IMAGE,
    dict(
        type='ResizeEdge',
        scale=224,
        edge='short',
        interpolation='bicubic',
        backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

#: CLIP's normalisation for ``ClsDataPreprocessor`` (0-255 scale).
CLIP_MEAN = [0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255]
CLIP_STD = [0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255]
