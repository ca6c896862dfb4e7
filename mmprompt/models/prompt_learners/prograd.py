# Copyright (c) mmprompt contributors. All rights reserved.
"""ProGrad's prompt learner: CoOp's, initialised from the teacher's
template."""
import logging
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmprompt.registry import MODELS
from .base import DEFAULT_N_CTX
from .coop import CoOpPromptLearner

__all__ = ['ProGradPromptLearner']


@MODELS.register_module()
class ProGradPromptLearner(CoOpPromptLearner):
    """CoOp's prompt as ProGrad (`Prompt-aligned Gradient
    <https://arxiv.org/abs/2205.14865>`_) initialises it.

    The prompts are CoOp's (:class:`CoOpPromptLearner`); only the
    initialisation from words differs, as in the original
    (``BeierZhu/Prompt-align``, ``trainers/prograd.py``): ``n_ctx`` is kept
    whatever the words, the context starts at **zero** and only its last
    ``k`` vectors are set, to the embeddings of the first ``k`` tokens of the
    words, where ``k`` is their number of space-separated words. The prompt
    text is ``"X " * (n_ctx - k) + words + " " + name + "."``; its first
    ``n_ctx`` tokens are the context::

        "a type of pet, a photo of a" (8 words, 9 BPE tokens), n_ctx=16:
        [SOT] 0 0 0 0 0 0 0 0 [a type of pet , a photo of] a [name] . [EOT]
              \\________________ 16 learned vectors _______/  fixed text

    A word that is several BPE tokens (``"pet,"``) leaves the last tokens of
    the words as fixed text after the context, as in the original.

    Args:
        clip (OpenCLIP): The frozen CLIP.
        n_ctx (int, optional): Number of context vectors ``M``, also with
            ``ctx_init``. None means 16 (the original's ``N_CTX``).
            Defaults to None.
        ctx_init (str | bool): The words to initialise from (at most
            ``n_ctx`` of them). ``True`` means the words of the teacher's
            template (``ProGradHead`` fills them in: the original's
            ``CTX_INIT True``); ``''`` or ``False`` a random ``N(0, 0.02)``
            init. Defaults to ''.
        csc (bool): Class-specific contexts (random init only).
            Defaults to False.
        num_classes (int, optional): Needed with ``csc=True``.
            Defaults to None.
        class_token_position (str): ``'end'``, ``'middle'`` or ``'front'``
            (the original's ``'middle'`` fails with a ``NameError``;
            mmprompt's is CoOp's). Defaults to 'end'.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> from mmprompt.models import OpenCLIP, ProGradPromptLearner
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> learner = ProGradPromptLearner(
        ...     clip, n_ctx=6, ctx_init='a photo of a')
        >>> learner.prompt_prefix
        'X X a photo of a'
        >>> learner.ctx[:2].abs().sum().item()  # zero before the words
        0.0
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: Optional[int] = None,
                 ctx_init: Union[str, bool] = '',
                 csc: bool = False,
                 num_classes: Optional[int] = None,
                 class_token_position: str = 'end',
                 init_cfg: Optional[dict] = None) -> None:
        if ctx_init is True:
            raise ValueError(
                'ctx_init=True initialises the context from the words of '
                "the teacher's template, which ProGradHead fills in: build "
                "the learner through ProGradHead(templates='<dataset or "
                "template>'), or give the words, e.g. ctx_init='a photo of "
                "a'")
        super().__init__(
            clip,
            n_ctx=n_ctx,
            ctx_init=ctx_init or '',
            csc=csc,
            num_classes=num_classes,
            class_token_position=class_token_position,
            init_cfg=init_cfg)

    def _init_context(self, n_ctx: Optional[int], ctx_init: str, csc: bool,
                      num_classes: Optional[int]) -> Tuple[torch.Tensor, str]:
        if not ctx_init:
            return super()._init_context(n_ctx, ctx_init, csc, num_classes)
        clip = self.clip
        n_ctx = DEFAULT_N_CTX if n_ctx is None else n_ctx
        words = ctx_init.split(' ')
        k = len(words)
        if k > n_ctx:
            raise ValueError(
                f'ctx_init={ctx_init!r} has {k} words, more than '
                f'n_ctx={n_ctx} context vectors: set n_ctx >= {k} (ProGrad '
                'pads the words with zero vectors in front)')
        tokens = clip.tokenize(ctx_init).to(clip.device)
        with torch.no_grad():
            embedding = clip.token_embedding(tokens).type(clip.dtype)
        ctx = torch.zeros(
            n_ctx, clip.width, dtype=clip.dtype, device=clip.device)
        ctx[n_ctx - k:] = embedding[0, 1:1 + k]
        fixed = len(clip.bpe_encode(ctx_init)) - k
        if fixed > 0:
            print_log(
                f'ctx_init {ctx_init!r} has {k} words but {k + fixed} BPE '
                f'tokens: as in the original ProGrad, the context holds the '
                f'first {k} tokens and the last {fixed} stay fixed text '
                'after it',
                logger='current',
                level=logging.INFO)
        print_log(
            f'Initial context: {n_ctx - k} zero vectors and {ctx_init!r} '
            f'({k} words)',
            logger='current')
        return ctx, ' '.join(['X'] * (n_ctx - k) + [ctx_init])
