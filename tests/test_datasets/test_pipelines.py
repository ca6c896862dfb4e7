# Copyright (c) mmprompt contributors. All rights reserved.
"""The configs' pipelines (configs/_base_/datasets/pipelines.py, their one
definition) against the original's torchvision transforms."""
import copy
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

import mmprompt  # noqa: F401
from mmprompt.registry import TRANSFORMS

PIPELINES = Config.fromfile(
    str(
        Path(__file__).resolve().parents[2] / 'configs' / '_base_' /
        'datasets' / 'pipelines.py'))
TRAIN_PIPELINE = PIPELINES.train_pipeline
TEST_PIPELINE = PIPELINES.test_pipeline

tv = pytest.importorskip('torchvision.transforms')
F = pytest.importorskip('torchvision.transforms.functional')


def compose(pipeline):
    from mmcv.transforms import Compose
    return Compose([TRANSFORMS.build(t) for t in pipeline])


def mm_image(packed):
    """(3, H, W) BGR tensor of PackInputs -> (H, W, 3) RGB array."""
    return packed['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]


def original_test(path):
    img = Image.open(path).convert('RGB')
    t = tv.Compose([
        tv.Resize(224, interpolation=tv.InterpolationMode.BICUBIC),
        tv.CenterCrop(224)
    ])
    return np.asarray(t(img))


def random_image(rng, size, mode):
    w, h = size
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # smooth-ish content so that bicubic overshoot and clipping are exercised
    arr[:h // 2] = arr[:h // 2] // 4 + 180
    img = Image.fromarray(arr)
    if mode == 'L':
        img = img.convert('L')
    elif mode == 'P':
        img = img.convert('P')
    elif mode == 'RGBA':
        img = img.convert('RGBA')
    return img


SIZES = [(500, 375), (375, 500), (224, 224), (225, 224), (224, 301), (100, 80),
         (33, 517), (1001, 223), (299, 299), (641, 427)]


@pytest.mark.parametrize('size', SIZES)
@pytest.mark.parametrize('mode,ext', [('RGB', '.jpg'), ('RGB', '.png'),
                                      ('L', '.png'), ('P', '.png'),
                                      ('RGBA', '.png')])
def test_test_pipeline_pixel_identical(tmp_path, size, mode, ext):
    rng = np.random.default_rng(sum(size))
    path = tmp_path / f'img{ext}'
    random_image(rng, size, mode).save(path)
    out = compose(TEST_PIPELINE)(dict(img_path=str(path)))
    got = mm_image(out)
    expected = original_test(path)
    assert got.shape == expected.shape == (224, 224, 3)
    np.testing.assert_array_equal(got, expected)


def test_exif_orientation_ignored_like_pil(tmp_path):
    """PIL's open() does not rotate by EXIF; neither must the pipeline."""
    rng = np.random.default_rng(0)
    img = random_image(rng, (320, 240), 'RGB')
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / 'rotated.jpg'
    img.save(path, exif=exif)
    got = mm_image(compose(TEST_PIPELINE)(dict(img_path=str(path))))
    np.testing.assert_array_equal(got, original_test(path))


@pytest.mark.parametrize('size,params', [((500, 375), (10, 20, 300, 250)),
                                         ((375, 500), (0, 0, 500, 375)),
                                         ((120, 90), (5, 7, 31, 45))])
@pytest.mark.parametrize('flip', [False, True])
def test_train_pipeline_same_crop_as_torchvision(tmp_path, size, params, flip):
    """Given the same crop box and flip, the pixels are the original's."""
    top, left, height, width = params
    pipeline = compose(TRAIN_PIPELINE)
    crop, flipper = pipeline.transforms[1:3]
    # fix the random draws on the instances
    crop.rand_crop_params = lambda img: (top, left, height, width)
    flipper._choose_direction = lambda: 'horizontal' if flip else None
    rng = np.random.default_rng(1)
    path = tmp_path / 'img.jpg'
    random_image(rng, size, 'RGB').save(path)
    got = mm_image(pipeline(dict(img_path=str(path))))
    img = Image.open(path).convert('RGB')
    expected = F.resized_crop(
        img,
        top,
        left,
        height,
        width, [224, 224],
        interpolation=tv.InterpolationMode.BICUBIC)
    if flip:
        expected = F.hflip(expected)
    np.testing.assert_array_equal(got, np.asarray(expected))


def test_train_crop_parameters_follow_torchvision_rule():
    """Crop boxes obey torchvision's area / aspect-ratio constraints."""
    from mmpretrain.datasets.transforms import RandomResizedCrop
    t = TRANSFORMS.build(TRAIN_PIPELINE[1])
    assert isinstance(t, RandomResizedCrop)
    np.random.seed(0)
    img = np.zeros((375, 500, 3), np.uint8)
    for _ in range(200):
        top, left, h, w = t.rand_crop_params(img)
        assert 0 <= top <= 375 - h and 0 <= left <= 500 - w
        if (h, w) != (375, 500):
            assert 0.08 * 0.9 <= h * w / (375 * 500) <= 1.0
            assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05


def test_tip_train_pipeline_is_the_train_pipeline_with_half_crops():
    """Tip-Adapter's (and LP++'s) augmentation: the verified train pipeline
    with RandomResizedCrop's scale (0.5, 1) instead of (0.08, 1)."""
    tip = copy.deepcopy(PIPELINES.tip_train_pipeline)
    assert tip[1].pop('crop_ratio_range') == (0.5, 1.0)
    train = copy.deepcopy(TRAIN_PIPELINE)
    assert train[1].pop('crop_ratio_range') == (0.08, 1.0)
    assert tip == train
    t = TRANSFORMS.build(PIPELINES.tip_train_pipeline[1])
    np.random.seed(0)
    img = np.zeros((375, 500, 3), np.uint8)
    areas = [
        h * w / (375 * 500)
        for _, _, h, w in (t.rand_crop_params(img) for _ in range(200))
    ]
    assert min(areas) >= 0.5 * 0.95 and max(areas) <= 1.0
