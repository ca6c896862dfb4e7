# Copyright (c) mmprompt contributors. All rights reserved.
"""Shared parts of the prompt heads: the frozen CLIP, cosine logits and the
ways to encode many prompts fast without changing a logit."""
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from torch.utils.checkpoint import checkpoint

from mmprompt.registry import MODELS

__all__ = ['BasePromptHead']


class BasePromptHead(ClsHead):
    """A classification head whose weights are text features of prompts.

    ``logits = logit_scale.exp() * cos(f, g_i)`` for the L2-normalised image
    feature ``f`` and the text feature ``g_i`` of class ``i``'s prompt,
    computed in fp32 whatever the CLIP's precision.

    Prompts whose class name comes last share their first ``1 + M``
    positions (SOT and context) within a group: all classes for CoOp, all
    classes of one image for CoCoOp. With ``prefix_cache`` those positions
    go through the text tower once per group and the class-name positions
    attend to their cached keys and values (exact under the causal mask).

    Args:
        prompt_learner (dict, optional): Config of the prompt learner, built
            with the head's CLIP; None for heads without one (zero-shot).
            Defaults to None.
        clip (OpenCLIP | dict): The frozen CLIP, shared with the classifier
            (which passes it), or its config.
        loss (dict): Config of the loss. Defaults to
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        topk (int | tuple[int]): Top-k accuracies when ``cal_acc``.
            Defaults to (1, ).
        cal_acc (bool): Log the training accuracy. Defaults to False.
        prefix_cache (bool): Encode shared prompt prefixes once.
            Defaults to True.
        text_chunk_size (int, optional): At most this many prompts per call
            of the text tower; bounds memory together with
            ``grad_checkpointing``. None for all at once. Defaults to None.
        grad_checkpointing (bool): Recompute the text tower's activations of
            each chunk in the backward pass instead of keeping them, so
            training memory no longer grows with the number of prompts.
            Defaults to False.
        init_cfg (dict, optional): Unused. Defaults to None.
    """

    #: On a CPU, the prefix-cached path encodes at most about this many text
    #: positions (images x class-name positions) per call of the text tower:
    #: larger calls run no faster and fall out of the processor's cache.
    CPU_TEXT_ROWS = 1024

    def __init__(self,
                 prompt_learner: Optional[dict] = None,
                 clip: Union[nn.Module, dict, None] = None,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 prefix_cache: bool = True,
                 text_chunk_size: Optional[int] = None,
                 grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        if isinstance(clip, dict):
            clip = MODELS.build(clip)
        if clip is None:
            raise ValueError(
                f'{type(self).__name__} needs the frozen CLIP: build it '
                'inside a PromptClassifier, or pass clip=OpenCLIP(...)')
        if text_chunk_size is not None and (
                not isinstance(text_chunk_size, int) or text_chunk_size < 1):
            raise ValueError('text_chunk_size must be a positive int or '
                             f'None, got {text_chunk_size!r}')
        # Shared with the classifier; not registered here.
        object.__setattr__(self, 'clip', clip)
        self.prefix_cache = prefix_cache
        self.text_chunk_size = text_chunk_size
        self.grad_checkpointing = grad_checkpointing
        if prompt_learner is not None:
            self.prompt_learner = MODELS.build(
                prompt_learner, default_args=dict(clip=self.clip))

    @property
    def class_names(self) -> list:
        """The classes the head scores now, in label order."""
        return self.prompt_learner.class_names

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Set the classes the head scores, in label order."""
        self.prompt_learner.set_class_names(class_names)

    def cosine_logits(self, image_features: torch.Tensor,
                      text_features: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarity in fp32.

        Args:
            image_features (Tensor): Normalised ``(B, D)``.
            text_features (Tensor): ``(K, D)`` shared by all images, or
                ``(B, K, D)`` one set per image; normalised here.

        Returns:
            Tensor: ``(B, K)``.
        """
        # fp32 also under autocast: the logits feed a softmax over classes.
        with torch.autocast(image_features.device.type, enabled=False):
            scale = self.clip.logit_scale.float().exp()
            f = image_features.float()
            g = F.normalize(text_features.float(), dim=-1)
            if g.dim() == 2:
                return scale * f @ g.t()
            return scale * torch.einsum('bd,bkd->bk', f, g)

    # ------------------------------------------------------------------
    # encoding many prompts
    # ------------------------------------------------------------------
    def _classes_per_call(self, groups: int, num_classes: int) -> int:
        """How many classes a text-tower call takes so that it holds at
        most ``text_chunk_size`` prompts (``groups`` prompts per class)."""
        if self.text_chunk_size is None:
            return num_classes
        return max(1, self.text_chunk_size // max(groups, 1))

    def _chunks(self, groups: int, num_classes: int):
        """Class ranges of :meth:`_classes_per_call` classes."""
        step = self._classes_per_call(groups, num_classes)
        return [(lo, min(lo + step, num_classes))
                for lo in range(0, num_classes, step)]

    def _run(self, fn: Callable, *args) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def encode_end_prompts(self, learner: nn.Module,
                           ctx: torch.Tensor) -> torch.Tensor:
        """Text features of ``[SOT][ctx][name_i][.][EOT]`` for every class.

        Args:
            learner (BasePromptLearner): Holds the class-name tokens.
            ctx (Tensor): ``(G, M, W)``, one context per group of prompts.

        Returns:
            Tensor: ``(G, K, D)``.
        """
        clip = self.clip
        if self.prefix_cache and clip.supports_prefix_cache:
            return self._encode_with_prefix_cache(learner, ctx)
        groups = ctx.shape[0]
        length = learner.max_eot + 1
        tokens = learner.tokenized_prompts

        def encode(lo, hi):
            prompts = learner.build_prompts(ctx, slice(lo, hi), length)
            features = clip.encode_text(
                prompts.flatten(0, 1), tokens[lo:hi].repeat(groups, 1))
            return features.view(groups, hi - lo, -1)

        chunks = self._chunks(groups, learner.tokenized_prompts.shape[0])
        return torch.cat([self._run(encode, lo, hi) for lo, hi in chunks],
                         dim=1)

    def _suffix_plan(self, learner: nn.Module, groups: int,
                     start: int) -> tuple:
        """How :meth:`_encode_with_prefix_cache` splits the classes.

        The classes are sorted by prompt length and cut into chunks of at
        most ``text_chunk_size`` prompts and, on a CPU, about
        ``CPU_TEXT_ROWS`` text positions, so one chunk's activations stay
        in the processor's cache (on a GPU one chunk, as large as memory
        allows, is fastest).

        Returns:
            tuple: ``(chunks, inverse)``: for each chunk the class and
            position indices of its packed suffix and the prompts' lengths;
            ``inverse`` puts the features back in label order.
        """
        device = learner.token_suffix.device
        key = (id(learner), learner.names_version, groups, start, device,
               self.text_chunk_size, self.CPU_TEXT_ROWS)
        if getattr(self, '_plan_key', None) == key:
            return self._plan
        lengths = [eot + 1 - start for eot in learner.eot_index.tolist()]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        max_classes = self._classes_per_call(groups, len(order))
        max_rows = self.CPU_TEXT_ROWS if device.type == 'cpu' else None
        chunks, current, rows = [], [], 0
        for index in order:
            rows_after = rows + groups * lengths[index]
            if current and (len(current) == max_classes or
                            (max_rows is not None and rows_after > max_rows)):
                chunks.append(current)
                current, rows_after = [], groups * lengths[index]
            current.append(index)
            rows = rows_after
        chunks.append(current)
        plan = []
        for classes in chunks:
            chunk_lengths = [lengths[index] for index in classes]
            class_index = torch.tensor(
                [index for index in classes for _ in range(lengths[index])],
                device=device)
            position = torch.cat(
                [torch.arange(lengths[index]) for index in classes])
            plan.append((class_index, position.to(device), chunk_lengths))
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        self._plan = (plan, inverse.to(device))
        self._plan_key = key
        return self._plan

    def _encode_with_prefix_cache(self, learner: nn.Module,
                                  ctx: torch.Tensor) -> torch.Tensor:
        """:meth:`encode_end_prompts` with ``[SOT][ctx]`` encoded once per
        group and the class-name positions of all prompts packed, each cut
        at its own EOT (:meth:`OpenCLIP.encode_suffix`)."""
        clip = self.clip
        groups, start = ctx.shape[0], 1 + ctx.shape[1]
        # SOT is the same token for every class.
        sot = learner.token_prefix[:1].expand(groups, -1, -1)
        cache = clip.encode_prefix(torch.cat([sot, ctx.to(sot.dtype)], dim=1))
        chunks, inverse = self._suffix_plan(learner, groups, start)

        def encode(class_index, position, lengths):
            suffix = learner.token_suffix[class_index, position]  # (N, W)
            return clip.encode_suffix(cache, suffix, lengths)

        features = torch.cat([self._run(encode, *chunk) for chunk in chunks],
                             dim=1)
        return features[:, inverse]
