# Copyright (c) mmprompt contributors. All rights reserved.
"""The reference text encoder: every prompt materialised and encoded."""
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from mmprompt.registry import MODELS
from ..prompt_learners import Prompts

__all__ = ['PlainTextEncoder']


@MODELS.register_module()
class PlainTextEncoder(BaseModule):
    """Encode :class:`Prompts` by materialising every prompt.

    Each of the ``G x K`` prompts becomes its token embeddings with the
    context in place (:meth:`Prompts.embeddings`), cut after the last EOT,
    and goes through the frozen CLIP's text tower, with the prompts' deep
    text rows written before their blocks. The straightforward computation,
    and the reference the faster encoders are tested against.

    Args:
        clip (OpenCLIP): The frozen CLIP (the head passes it).
        text_chunk_size (int, optional): At most this many prompts per call
            of the text tower; bounds memory together with
            ``grad_checkpointing``. None for all at once. Defaults to None.
        grad_checkpointing (bool): Recompute the text tower's activations of
            each chunk in the backward pass instead of keeping them, so
            training memory no longer grows with the number of prompts.
            Defaults to False.
        cut_after_eot (bool): Encode the prompts up to their last EOT only
            (exact for the causal, EOT-pooled towers the CLIP accepts with
            ``truncate_text``). False encodes all ``context_length``
            positions as the original CoOp does: the baseline of
            ``tools/analysis_tools/benchmark.py``. Defaults to True.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> import torch
        >>> from mmprompt.models import (CoOpPromptLearner, OpenCLIP,
        ...                              PlainTextEncoder)
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> learner = CoOpPromptLearner(clip, n_ctx=4)
        >>> learner.set_class_names(['cat', 'dog', 'bird'])
        >>> PlainTextEncoder(clip)(learner()).shape  # (G, K, D)
        torch.Size([1, 3, 64])
    """

    def __init__(self,
                 clip: Optional[nn.Module] = None,
                 text_chunk_size: Optional[int] = None,
                 grad_checkpointing: bool = False,
                 cut_after_eot: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if clip is None:
            raise ValueError(
                f'{type(self).__name__} needs the frozen CLIP: build it '
                'through a head (or pass clip=OpenCLIP(...))')
        if text_chunk_size is not None and (
                not isinstance(text_chunk_size, int) or text_chunk_size < 1):
            raise ValueError('text_chunk_size must be a positive int or '
                             f'None, got {text_chunk_size!r}')
        # Shared with the classifier; not registered here.
        object.__setattr__(self, 'clip', clip)
        self.text_chunk_size = text_chunk_size
        self.grad_checkpointing = grad_checkpointing
        self.cut_after_eot = cut_after_eot

    def forward(self, prompts: Prompts) -> torch.Tensor:
        """Text features of every prompt.

        Args:
            prompts (Prompts): ``K`` prompts for ``G`` groups.

        Returns:
            Tensor: ``(G, K, embed_dim)``, not normalised.
        """
        tokens = prompts.class_tokens
        groups = prompts.groups
        cut = self.cut_after_eot and self.clip.truncate_text
        length = int(tokens.eot.max()) + 1 if cut else None

        # rows_dtype only where the prompts ask for it: a CLIP of one's own
        # (docs/tutorials/add_backbone.md) need not take it otherwise
        rounding = ({} if prompts.rows_dtype is None else dict(
            rows_dtype=prompts.rows_dtype))

        def encode(lo: int, hi: int) -> torch.Tensor:
            classes = slice(lo, hi)
            embeddings = prompts.embeddings(classes, length)  # (G, k, L, W)
            features = self.clip.encode_text(
                embeddings.flatten(0, 1),
                tokens.eot[classes].repeat(groups),
                self._text_overwrite(prompts, hi - lo),
                truncate=cut,
                **rounding)
            return features.view(groups, hi - lo, -1)

        chunks = self._chunks(groups, prompts.num_classes)
        return torch.cat([self._run(encode, lo, hi) for lo, hi in chunks],
                         dim=1)

    @staticmethod
    def _text_overwrite(prompts: Prompts,
                        classes: int) -> Dict[int, Tuple[int, torch.Tensor]]:
        """The deep text rows as :meth:`OpenCLIP.encode_text` takes them,
        for ``G x classes`` sequences ordered group-major."""
        overwrite = {}
        for block, rows in prompts.text_rows.items():
            if rows.dim() == 3:  # (G, n, W): one set per group
                rows = rows[:, None].expand(-1, classes, -1, -1).flatten(0, 1)
            overwrite[block] = (1, rows)
        return overwrite

    def _classes_per_call(self, groups: int, num_classes: int) -> int:
        """How many classes a text-tower call takes so that it holds at
        most ``text_chunk_size`` prompts (``groups`` prompts per class)."""
        if self.text_chunk_size is None:
            return num_classes
        return max(1, self.text_chunk_size // max(groups, 1))

    def _chunks(self, groups: int, num_classes: int) -> List[Tuple[int, int]]:
        """Class ranges of :meth:`_classes_per_call` classes."""
        step = self._classes_per_call(groups, num_classes)
        return [(lo, min(lo + step, num_classes))
                for lo in range(0, num_classes, step)]

    def _run(self, fn: Callable, *args) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)
