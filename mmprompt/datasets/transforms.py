# Copyright (c) mmprompt contributors. All rights reserved.
"""Image loading: mmcv's ``LoadImageFromFile`` with 16-bit images read
correctly and over-large images named.

Registered in mmprompt's ``TRANSFORMS`` under mmcv's name, so every
pipeline built in the ``'mmprompt'`` scope (the configs' ``type=
'LoadImageFromFile'``, and every pipeline of mmprompt's datasets, which
build their transforms with mmprompt's registry) loads images with it;
mmcv's own stays reachable as ``'mmcv.LoadImageFromFile'``.
"""
import io
import logging
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile as _MMCVLoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log
from PIL import Image, ImageOps

from mmprompt.registry import TRANSFORMS

__all__ = ['LoadImageFromFile', 'ImageReadError', 'ImageTooLargeError']

#: PIL modes of 16 bits per pixel (grey), read as ``uint16`` arrays.
SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
#: PIL modes whose value range is unknown: refused rather than clipped.
UNKNOWN_RANGE_MODES = ('I', 'F', 'I;16S', 'I;32', 'I;32S')


class ImageReadError(OSError):
    """An image file that cannot be decoded, named (mmcv's pillow decoder
    says ``cannot identify image file <_io.BytesIO ...>``)."""


class ImageTooLargeError(ImageReadError):
    """An image over PIL's decompression-bomb limit (named, with the
    setting that raises the limit)."""


@TRANSFORMS.register_module()
class LoadImageFromFile(_MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that reads 16-bit images correctly.

    With ``imdecode_backend='pillow'`` (every shipped config), mmcv converts
    an image with ``PIL.Image.convert('RGB')``, as the original CoOp does:
    16-bit grey PNGs and TIFFs (PIL mode ``I;16``) come out white wherever
    a pixel exceeds 255, i.e. almost everywhere. Here they are scaled to 8
    bits (``value >> 8``, what OpenCV's decoder and PIL's own reading of
    16-bit RGB PNGs do) and a warning says so, once per transform (once per
    dataset and process). 32-bit integer and float images (modes ``I``,
    ``F``), whose range cannot be known, are refused with an error naming
    the file instead of being clipped. Every other image is decoded by mmcv
    exactly as before (the pixel-identity tests of the configs' pipelines
    run through this class).

    A file PIL cannot decode raises :class:`ImageReadError` naming it, and
    an image over PIL's decompression-bomb limit (``DecompressionBombError``,
    which names neither the file nor the setting) raises
    :class:`ImageTooLargeError` naming both.

    Args:
        **kwargs: The arguments of mmcv's ``LoadImageFromFile``
            (``imdecode_backend``, ``color_type``, ``ignore_empty``, ...).

    Examples:
        >>> import os.path as osp, tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> path = osp.join(tempfile.mkdtemp(), 'grey16.png')
        >>> Image.fromarray(np.full((4, 4), 40000, np.uint16)).save(path)
        >>> load = LoadImageFromFile(imdecode_backend='pillow')
        >>> img = load(dict(img_path=path))['img']
        >>> img.shape, img.dtype, int(img.max())  # 40000 >> 8
        ((4, 4, 3), dtype('uint8'), 156)
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._warned_16bit = False

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image of ``results['img_path']``.

        Args:
            results (dict): Holds ``img_path``.

        Returns:
            dict | None: ``results`` with ``img``, ``img_shape`` and
            ``ori_shape``; None for an unreadable image when
            ``ignore_empty``.
        """
        if self.imdecode_backend != 'pillow':
            return super().transform(results)
        filename = results['img_path']
        try:
            if self.file_client_args is not None:
                file_client = fileio.FileClient.infer_client(
                    self.file_client_args, filename)
                img_bytes = file_client.get(filename)
            else:
                img_bytes = fileio.get(
                    filename, backend_args=self.backend_args)
            img = self._decode(img_bytes, filename)
        except Exception:
            if self.ignore_empty:
                return None
            raise
        assert img is not None, f'failed to load image: {filename}'
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _decode(self, content: bytes, filename: str) -> np.ndarray:
        """Decode with mmcv's pillow path unless the image has more than 8
        bits per channel."""
        with io.BytesIO(content) as buff:
            try:
                # Reads the header only; the pixels are decoded below.
                image = Image.open(buff)
            except Image.DecompressionBombError as err:
                raise ImageTooLargeError(
                    f'image {filename!r} is over PIL\'s decompression-bomb '
                    f'limit ({err}). The limit is 2 x '
                    f'PIL.Image.MAX_IMAGE_PIXELS (now '
                    f'{Image.MAX_IMAGE_PIXELS}); if you trust the file, '
                    'shrink it, or raise the limit with '
                    '`PIL.Image.MAX_IMAGE_PIXELS = None` (or a larger '
                    'number) in a module the config imports through '
                    'custom_imports') from err
            except Exception:
                image = None  # mmcv below raises its own error
            if image is None or not (image.mode in SIXTEEN_BIT_MODES
                                     or image.mode in UNKNOWN_RANGE_MODES):
                try:
                    return mmcv.imfrombytes(
                        content, flag=self.color_type, backend='pillow')
                except (OSError, ValueError, SyntaxError) as err:
                    # PIL reports broken files as OSError (and subclasses),
                    # ValueError or SyntaxError, none naming the file.
                    raise ImageReadError(
                        f'cannot read image {filename!r}: '
                        f'{type(err).__name__}: {err}') from err
            if self.color_type == 'unchanged':
                return np.array(image)
            if image.mode in UNKNOWN_RANGE_MODES:
                raise ValueError(
                    f'image {filename!r} has {image.mode!r} pixels (PIL '
                    'mode: 32-bit integer or float), whose range is unknown; '
                    'mmcv would clip them to 0..255. Convert it to an 8-bit '
                    'or 16-bit image (PNG, JPEG, TIFF)')
            if self.color_type in ('color', 'grayscale'):
                image = ImageOps.exif_transpose(image)
            pixels = np.asarray(image).astype(np.uint16)
        grey = (pixels >> 8).astype(np.uint8)
        if not self._warned_16bit:
            self._warned_16bit = True
            print_log(
                f'{filename!r} is a 16-bit image (PIL mode '
                f'{image.mode!r}): loaded scaled to 8 bits (value >> 8). '
                "The original CoOp's convert('RGB') clips such images to "
                'white. Said once per dataset.',
                logger='current',
                level=logging.WARNING)
        if self.color_type.startswith('grayscale'):
            return grey
        return np.repeat(grey[..., None], 3, axis=2)
