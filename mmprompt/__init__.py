# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt: CoOp and CoCoOp prompt learning for CLIP on OpenMMLab.

Importing the package checks that the installed OpenMMLab libraries and
open_clip are within the versions mmprompt is tested with, makes mmengine's
checkpoints loadable with ``torch.load(weights_only=True)`` and registers
every model, dataset, hook and metric under the scope ``'mmprompt'``.
"""
import warnings

# mmpretrain imports mmcv's transformer bricks, which warn under mmcv-lite
# about compiled ops that nothing in mmprompt uses.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

import mmcv  # noqa: E402
import mmengine  # noqa: E402
import open_clip  # noqa: E402
import torch  # noqa: E402
from mmengine.utils import digit_version  # noqa: E402

from .version import __version__, version_info  # noqa: E402

# name, installed version, minimum (inclusive), maximum (exclusive)
_VERSION_WINDOWS = [
    ('mmcv', mmcv.__version__, '2.0.0', '2.3.0'),
    ('mmengine', mmengine.__version__, '0.10.0', '1.0.0'),
    ('open_clip_torch', open_clip.__version__, '3.0.0', '4.0.0'),
    ('torch', torch.__version__, '2.1.0', '3.0.0'),
]


def _check_versions() -> None:
    import mmpretrain
    windows = _VERSION_WINDOWS + [
        ('mmpretrain', mmpretrain.__version__, '1.2.0', '1.3.0')
    ]
    for name, installed, low, high in windows:
        if not (digit_version(low) <= digit_version(installed) <
                digit_version(high)):
            raise ImportError(
                f'{name}=={installed} is installed, but mmprompt '
                f'{__version__} needs {name}>={low},<{high}. Install a '
                f'version in that range, e.g. pip install "{name}>={low},'
                f'<{high}".')


_check_versions()

from .utils import register_checkpoint_loader, register_safe_globals  # noqa

register_safe_globals()
register_checkpoint_loader()

from . import datasets, engine, evaluation, models  # noqa: F401,E402

__all__ = ['__version__', 'version_info']
