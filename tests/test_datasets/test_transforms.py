# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt's LoadImageFromFile: 16-bit images, over-large images."""
import logging

import numpy as np
import pytest
from mmengine.logging import MMLogger
from PIL import Image
from test_pipelines import TEST_PIPELINE, compose, mm_image

import mmprompt  # noqa: F401
from mmprompt.datasets import ImageTooLargeError
from mmprompt.registry import DATASETS, TRANSFORMS

LOAD = dict(
    type='LoadImageFromFile',
    imdecode_backend='pillow',
    color_type='color_ignore_orientation')


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def log_records():
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def grey16(path, size=(40, 30)):
    """A 16-bit grey PNG (PIL mode I;16) whose values span 0..65535."""
    h, w = size
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, (h, w), dtype=np.uint16)
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode == 'I;16'
    return pixels


def test_16bit_png_is_scaled_to_8_bits_and_logged_once(tmp_path, log_records):
    pixels = grey16(tmp_path / 'a.png')
    grey16(tmp_path / 'b.png')
    load = TRANSFORMS.build(LOAD)
    img = load(dict(img_path=str(tmp_path / 'a.png')))['img']
    expected = (pixels >> 8).astype(np.uint8)
    assert img.dtype == np.uint8 and img.shape == (40, 30, 3)
    for channel in range(3):
        np.testing.assert_array_equal(img[..., channel], expected)
    # not white, as PIL's convert('RGB') (mmcv's and the original's) gives
    white = np.asarray(Image.open(tmp_path / 'a.png').convert('RGB'))
    assert (white == 255).mean() > 0.99 and (img == 255).mean() < 0.01
    load(dict(img_path=str(tmp_path / 'b.png')))
    said = [m for m in log_records if '16-bit image' in m]
    assert len(said) == 1 and 'a.png' in said[0], log_records
    # grey-scale loading, and the configs' whole test pipeline
    grey = TRANSFORMS.build(dict(LOAD, color_type='grayscale'))(dict(
        img_path=str(tmp_path / 'a.png')))['img']
    np.testing.assert_array_equal(grey, expected)
    out = mm_image(
        compose(TEST_PIPELINE)(dict(img_path=str(tmp_path / 'a.png'))))
    assert out.shape == (224, 224, 3) and 0 < out.mean() < 250


def test_16bit_rgb_png_and_8bit_images_unchanged(tmp_path):
    import cv2
    rgb16 = np.random.default_rng(1).integers(
        0, 65536, (20, 30, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / 'rgb16.png'), rgb16)  # BGR on disk order
    img = TRANSFORMS.build(LOAD)(dict(img_path=str(tmp_path /
                                                   'rgb16.png')))['img']
    np.testing.assert_array_equal(img, (rgb16 >> 8).astype(np.uint8))
    from mmcv.transforms import LoadImageFromFile
    Image.fromarray(np.uint8(rgb16 >> 8)).save(tmp_path / 'rgb8.png')
    for name in ('rgb16.png', 'rgb8.png'):
        ours = TRANSFORMS.build(LOAD)(dict(img_path=str(tmp_path / name)))
        mmcv = LoadImageFromFile(
            imdecode_backend='pillow', color_type='color_ignore_orientation')(
                dict(img_path=str(tmp_path / name)))
        np.testing.assert_array_equal(ours['img'], mmcv['img'])


def test_images_of_unknown_range_are_refused(tmp_path):
    path = tmp_path / 'float.tif'
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(path)
    with pytest.raises(ValueError, match=r"float.tif.*'F' pixels"):
        TRANSFORMS.build(LOAD)(dict(img_path=str(path)))


def test_over_large_image_names_the_file_and_the_setting(
        tmp_path, monkeypatch):
    """PIL's DecompressionBombError, mid-epoch, named neither the file nor
    the setting."""
    root = tmp_path / 'data'
    (root / 'images' / 'a').mkdir(parents=True)
    Image.new('RGB', (30, 30)).save(root / 'images' / 'a' / 'big.png')
    (root / 'split.json'
     ).write_text('{"train": [["a/big.png", 0, "a"]], "val": [], "test": []}')
    dataset = DATASETS.build(
        dict(
            type='SplitJsonDataset',
            data_root=str(root),
            split_file='split.json',
            image_dir='images',
            split='train',
            pipeline=[LOAD]))
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 400)  # error above 800
    with pytest.raises(OSError) as err:
        dataset[0]
    message = str(err.value)
    assert str(root / 'images' / 'a' / 'big.png') in message
    assert 'PIL.Image.MAX_IMAGE_PIXELS' in message
    assert 'item 0 of the train split' in message
    assert isinstance(err.value.__cause__, ImageTooLargeError)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', None)
    assert dataset[0]['img'].shape == (30, 30, 3)


def test_over_large_image_with_mmcvs_loader_names_the_file(
        tmp_path, monkeypatch):
    root = tmp_path / 'data'
    (root / 'images' / 'a').mkdir(parents=True)
    Image.new('RGB', (30, 30)).save(root / 'images' / 'a' / 'big.png')
    (root /
     'split.json').write_text('{"train": [["a/big.png", 0, "a"]], "val": [], '
                              '"test": [["a/big.png", 0, "a"]]}')
    dataset = DATASETS.build(
        dict(
            type='SplitJsonDataset',
            data_root=str(root),
            split_file='split.json',
            image_dir='images',
            split='test',
            pipeline=[dict(LOAD, type='mmcv.LoadImageFromFile')]))
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 400)
    with pytest.raises(
            OSError,
            match=r'big.png.*item 0 of the test split'
            r'.*PIL.Image.MAX_IMAGE_PIXELS'):
        dataset[0]
