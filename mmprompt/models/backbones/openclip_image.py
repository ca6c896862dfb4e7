# Copyright (c) mmprompt contributors. All rights reserved.
"""CLIP's frozen image tower as an mmpretrain backbone (linear probes)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from mmprompt.registry import MODELS
from ..clip import OpenCLIP

__all__ = ['OpenCLIPImageBackbone']


@MODELS.register_module()
class OpenCLIPImageBackbone(BaseBackbone):
    """The image tower of a frozen :class:`OpenCLIP`, for mmpretrain heads.

    Gives CLIP's image features, ``(B, embed_dim)`` after the projection, as
    the original linear probe extracts them (``clip_model.visual(x)``), so an
    ``ImageClassifier`` with a ``LinearClsHead`` is a linear probe of CLIP
    with any weights ``OpenCLIP`` loads (RN50 included).

    Args:
        arch (str): open_clip architecture. Defaults to 'RN50'.
        pretrained (str, optional): As :class:`OpenCLIP`.
            Defaults to 'openai'.
        precision (str): As :class:`OpenCLIP`. Defaults to 'fp32'.
        normalize (bool): L2-normalise the features. Defaults to False.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.models import OpenCLIPImageBackbone
        >>> backbone = OpenCLIPImageBackbone('mmprompt-tiny-rn', None)
        >>> [f.shape for f in backbone(torch.rand(2, 3, 64, 64))]
        [torch.Size([2, 64])]
    """

    def __init__(self,
                 arch: str = 'RN50',
                 pretrained: Optional[str] = 'openai',
                 precision: str = 'fp32',
                 normalize: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.clip = OpenCLIP(arch, pretrained=pretrained, precision=precision)
        self.normalize = normalize

    def init_weights(self) -> None:
        """Nothing to do: the weights were loaded in ``__init__``."""

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        with torch.no_grad():
            features = self.clip.encode_image(inputs).float()
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return (features, )
