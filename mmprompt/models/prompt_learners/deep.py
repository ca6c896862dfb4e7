# Copyright (c) mmprompt contributors. All rights reserved.
"""Deep prompts: learned tokens written before the blocks of either tower
(deep language prompting, IVLP, MaPLe, VPT-deep)."""
import copy
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmprompt.registry import MODELS
from .base import BasePromptLearner
from .prompts import ClassTokens, Prompts

__all__ = [
    'DeepLanguagePromptLearner', 'DeepPromptLearner', 'IVLPPromptLearner',
    'MaPLePromptLearner', 'VPTDeepPromptLearner'
]

#: The originals (muzairkhattak/multimodal-prompt-learning) initialise from
#: CTX_INIT only when the prompt has at most this many tokens.
MAX_WORD_INIT = 4

VisionPrompts = Tuple[Optional[torch.Tensor], Dict[int, torch.Tensor]]


def _check_count(value, name: str) -> int:
    if (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f'{name} must be a positive int (the number of '
                         f'prompt tokens), got {value!r}')
    return value


def _check_depth(depth, blocks: int, name: str, tower: str) -> int:
    """``depth`` counts the input as 1: depth ``J`` writes prompts before
    blocks ``1 .. J - 1``, so it is at most the number of blocks."""
    if (not isinstance(depth, int) or isinstance(depth, bool)
            or not 1 <= depth <= blocks):
        raise ValueError(
            f'{name} must be an int in 1..{blocks}: the {tower} tower has '
            f'{blocks} blocks and depth J prompts its input and blocks '
            f'1..J-1 (the originals count the input as 1), got {depth!r}')
    return depth


def _deep_tokens(count: int, n: int, width: int,
                 device: torch.device) -> nn.ParameterList:
    """``count`` fp32 prompts ``(n, width)`` drawn from N(0, 0.02), the
    originals' deep prompts (fp32 whatever the CLIP's precision)."""
    tokens = nn.ParameterList()
    for _ in range(count):
        p = torch.empty(n, width, device=device)
        nn.init.normal_(p, std=0.02)
        tokens.append(nn.Parameter(p))
    return tokens


class _VisionTokens:
    """The vision half of IVLP and VPT-deep: ``vision_ctx`` ``(n, Wv)``
    appended before ``ln_pre`` and ``vision_deep[j]`` written over it
    before vision block ``j + 1``."""

    def _build_vision(self, clip: nn.Module, n_ctx: int, depth: int,
                      who: str) -> None:
        clip.check_vision_tokens(who)
        n_ctx = _check_count(n_ctx, 'n_vision_ctx')
        depth = _check_depth(depth, len(clip.vision_blocks), 'vision_depth',
                             'vision')
        self.n_vision_ctx = n_ctx
        self.vision_depth = depth
        width = clip.vision_width
        ctx = torch.empty(n_ctx, width, device=clip.device)
        nn.init.normal_(ctx, std=0.02)
        self.vision_ctx = nn.Parameter(ctx)
        self.vision_deep = _deep_tokens(depth - 1, n_ctx, width, clip.device)

    def vision_prompts(self) -> VisionPrompts:
        """``(tokens, {block: rows})`` for :meth:`OpenCLIP.encode_image`."""
        rows = {j + 1: p for j, p in enumerate(self.vision_deep)}
        return self.vision_ctx, rows


class DeepPromptLearner(BasePromptLearner):
    """A shallow text context and what the deep methods share.

    The prompt of class ``i`` is ``"<ctx_init> <name_i>."`` (or ``"X .. X
    <name_i>."`` without words) whose first ``n_ctx`` tokens after SOT are
    learned: with words they start as those words' embeddings and the rest
    of the words stay fixed text, as the originals (MaPLe's default learns
    "a photo" and keeps "of a")::

        [SOT] [V]1 .. [V]n  w_n+1 .. w_M  [name] . [EOT]

    The fixed words belong to the context of :class:`Prompts` (``M``
    positions), so they are part of the prefix every class shares.

    Args:
        clip (OpenCLIP): The frozen CLIP.
        n_ctx (int): Number of learned text tokens ``n``. Defaults to 2.
        ctx_init (str): Words whose first ``n`` tokens initialise the
            context, the others kept as fixed text; ``''`` draws
            ``N(0, 0.02)``. Defaults to 'a photo of a'.
        fp16_rounding (bool): Round every injected deep prompt (not the
            context) to fp16 after expanding it to the prompts or images,
            as the originals' ``p.expand(...).half()`` does also in their
            fp32 path (:attr:`Prompts.rows_dtype`). False injects them in
            the CLIP's precision. Defaults to True.
        init_cfg (dict, optional): Unused. Defaults to None.
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: int = 2,
                 ctx_init: str = 'a photo of a',
                 fp16_rounding: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        _check_count(n_ctx, 'n_ctx')
        if not isinstance(fp16_rounding, bool):
            raise TypeError(
                f'fp16_rounding must be a bool, got {fp16_rounding!r}')
        super().__init__(
            clip, n_ctx=n_ctx, ctx_init=ctx_init, init_cfg=init_cfg)
        self._fp16_rounding = fp16_rounding

    def _init_context(self, n_ctx: int, ctx_init: str, csc: bool,
                      num_classes: Optional[int]) -> Tuple[torch.Tensor, str]:
        clip = self.clip
        if not ctx_init:
            ctx = torch.empty(
                n_ctx, clip.width, dtype=clip.dtype, device=clip.device)
            nn.init.normal_(ctx, std=0.02)
            self.n_fixed = 0
            print_log(
                f'Initializing a generic context: {n_ctx} random vectors',
                logger='current')
            return ctx, ' '.join(['X'] * n_ctx)
        bpe = clip.bpe_encode(ctx_init)
        if n_ctx > len(bpe):
            raise ValueError(
                f'n_ctx={n_ctx} learned tokens, but ctx_init={ctx_init!r} '
                f'has only {len(bpe)} tokens to initialise them from: set '
                f"n_ctx <= {len(bpe)}, longer words, or ctx_init='' for "
                f'{n_ctx} random vectors (the original silently falls back '
                f'to random vectors only above {MAX_WORD_INIT} tokens and '
                'misaligns the prompt below)')
        tokens = clip.tokenize(ctx_init).to(clip.device)
        with torch.no_grad():
            embedding = clip.token_embedding(tokens).type(clip.dtype)
        self.n_fixed = len(bpe) - n_ctx
        print_log(
            f'Initial context: the first {n_ctx} of the {len(bpe)} tokens of '
            f'{ctx_init!r} learned, the rest fixed text',
            logger='current')
        return embedding[0, 1:1 + n_ctx].clone(), ctx_init

    def class_tokens(self) -> ClassTokens:
        """The class tokens, with the ``n`` learned and the fixed words as
        the ``M`` context positions."""
        tokens = super().class_tokens()
        return ClassTokens(
            embeddings=tokens.embeddings,
            eot=tokens.eot,
            n_ctx=self.n_ctx + self.n_fixed,
            name_lengths=tokens.name_lengths,
            version=tokens.version)

    @property
    def fp16_rounding(self) -> bool:
        """Whether the injected prompts are rounded as the originals'. A
        property, so a checkpoint's record of its learner leaves it out: a
        prompt trained with the rounding loads into a model without it."""
        return self._fp16_rounding

    @property
    def rows_dtype(self) -> Optional[torch.dtype]:
        """The dtype every injected copy passes through: fp16 with
        ``fp16_rounding``, else None."""
        return torch.float16 if self.fp16_rounding else None

    def context(self, tokens: ClassTokens) -> torch.Tensor:
        """``(1, 1, M, W)``: the learned tokens, then the fixed words."""
        fixed = tokens.embeddings[0, 1 + self.n_ctx:1 + tokens.n_ctx]
        ctx = torch.cat([self.ctx, fixed.to(self.ctx.dtype)])
        return ctx[None, None]

    def text_rows(self) -> Dict[int, torch.Tensor]:
        """``{block: (n, W)}``: the deep text prompts."""
        return {}

    def vision_prompts(self) -> VisionPrompts:
        """``(tokens, {block: rows})`` for :meth:`OpenCLIP.encode_image`,
        ``(None, {})`` without vision prompts."""
        return None, {}

    def forward(self) -> Prompts:
        """The prompts of every class, with the deep rows of both towers.
        """
        tokens = self.class_tokens()
        vision_tokens, vision_rows = self.vision_prompts()
        return Prompts(
            self.context(tokens),
            tokens,
            text_rows=self.text_rows(),
            vision_tokens=vision_tokens,
            vision_rows=vision_rows,
            rows_dtype=self.rows_dtype)


@MODELS.register_module()
class DeepLanguagePromptLearner(DeepPromptLearner):
    """Deep language prompting: independent learned text tokens per layer
    (the original's IVLP trainer with no vision prompts).

    Before text block ``j`` (``1 <= j < text_depth``) positions ``1..n``
    (right after SOT, before every class name) are replaced by
    ``text_deep[j - 1]`` ``(n, W)``, without positional embedding; block 0
    sees the context. Works with every CLIP the text encoders take (ViT or
    ResNet image towers alike).

    Args:
        clip (OpenCLIP): The frozen CLIP.
        n_ctx (int): Learned tokens per layer. Defaults to 4 (the
            original's ``…_4ctx_language_only`` config).
        ctx_init (str): Initialisation words of the context (their first
            ``n_ctx`` tokens; the rest stay fixed text).
            Defaults to 'a photo of a'.
        text_depth (int): ``J``: the context and ``J - 1`` deep prompts
            (blocks ``1..J-1``), at most the number of text blocks.
            Defaults to 12 (every block of ViT-B/16's text tower).
        fp16_rounding (bool): See :class:`DeepPromptLearner`.
            Defaults to True.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> from mmprompt.models import OpenCLIP
        >>> from mmprompt.models.prompt_learners import (
        ...     DeepLanguagePromptLearner)
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> learner = DeepLanguagePromptLearner(clip, text_depth=2)
        >>> learner.set_class_names(['cat', 'dog'])
        >>> prompts = learner()
        >>> prompts.context.shape, sorted(prompts.text_rows)
        (torch.Size([1, 1, 4, 64]), [1])
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: int = 4,
                 ctx_init: str = 'a photo of a',
                 text_depth: int = 12,
                 fp16_rounding: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            clip,
            n_ctx=n_ctx,
            ctx_init=ctx_init,
            fp16_rounding=fp16_rounding,
            init_cfg=init_cfg)
        self.text_depth = _check_depth(text_depth, len(clip.text_blocks),
                                       'text_depth', 'text')
        self.text_deep = _deep_tokens(text_depth - 1, self.n_ctx, clip.width,
                                      clip.device)

    def text_rows(self) -> Dict[int, torch.Tensor]:
        return {j + 1: p for j, p in enumerate(self.text_deep)}


@MODELS.register_module()
class IVLPPromptLearner(_VisionTokens, DeepLanguagePromptLearner):
    """Independent vision-language prompting (IVLP): deep language prompts
    and, independently, deep vision prompts.

    Text: as :class:`DeepLanguagePromptLearner`. Vision: ``vision_ctx``
    ``(n_v, Wv)`` is appended after ``[CLS; patches] + pos`` and before
    ``ln_pre`` (no positional embedding, never pooled), and before vision
    block ``j`` (``1 <= j < vision_depth``) the last ``n_v`` tokens are
    replaced by ``vision_deep[j - 1]`` (no LayerNorm). ``vision_depth=1``
    appends only. Widths come from the CLIP; the image tower must be a ViT
    pooled at its class token (refused at build otherwise).

    Args:
        clip (OpenCLIP): The frozen CLIP.
        n_ctx (int): Learned text tokens per layer. Defaults to 2.
        ctx_init (str): Initialisation words. Defaults to 'a photo of a'.
        text_depth (int): Text depth ``J``. Defaults to 12.
        n_vision_ctx (int): Learned vision tokens per layer. Defaults to 2.
        vision_depth (int): Vision depth, counted as ``text_depth``.
            Defaults to 12.
        fp16_rounding (bool): See :class:`DeepPromptLearner`.
            Defaults to True.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> from mmprompt.models import OpenCLIP
        >>> from mmprompt.models.prompt_learners import IVLPPromptLearner
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> learner = IVLPPromptLearner(clip, text_depth=2, vision_depth=2)
        >>> tokens, rows = learner.vision_prompts()
        >>> tokens.shape, sorted(rows)
        (torch.Size([2, 64]), [1])
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: int = 2,
                 ctx_init: str = 'a photo of a',
                 text_depth: int = 12,
                 n_vision_ctx: int = 2,
                 vision_depth: int = 12,
                 fp16_rounding: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            clip,
            n_ctx=n_ctx,
            ctx_init=ctx_init,
            text_depth=text_depth,
            fp16_rounding=fp16_rounding,
            init_cfg=init_cfg)
        self._build_vision(clip, n_vision_ctx, vision_depth, 'IVLP prompts')


@MODELS.register_module()
class MaPLePromptLearner(DeepPromptLearner):
    """Multi-modal prompt learning (`MaPLe
    <https://arxiv.org/abs/2210.03117>`_): text prompts per layer, vision
    prompts coupled to them.

    Text: the context before block 0 and ``compound_prompts_text[j]``
    ``(n, W)`` over positions ``1..n`` before text block ``j + 1``.
    Vision: ``V0 = proj(ctx)`` appended before ``ln_pre`` (no positional
    embedding) and ``Vj = compound_prompt_projections[j](compound_prompts_
    text[j])`` over the last ``n`` tokens before vision block ``j + 1``::

        text block 0:   ctx                 vision input: proj(ctx)
        text block j+1: P_j                 vision block j+1: F_j(P_j)

    ``proj`` and every ``F_j`` are ``Linear(W -> Wv)``, the widths read from
    the CLIP. As in the original, the ``F_j`` start identical (copies of one
    freshly initialised layer), ``proj`` is in the CLIP's precision and the
    deep prompts and ``F_j`` in fp32. ``depth`` is the original's
    ``PROMPT_DEPTH`` and must fit both towers.

    Args:
        clip (OpenCLIP): The frozen CLIP (its image tower a ViT pooled at
            the class token).
        n_ctx (int): Learned tokens per layer. Defaults to 2.
        ctx_init (str): Initialisation words. Defaults to 'a photo of a'.
        depth (int): ``J``: the inputs and blocks ``1..J-1`` of both towers.
            Defaults to 9 (base-to-new; 3 for cross-dataset and domain
            generalisation).
        fp16_rounding (bool): See :class:`DeepPromptLearner` (``V0`` is
            rounded too, as the original). Defaults to True.
        init_cfg (dict, optional): Unused. Defaults to None.

    Examples:
        >>> from mmprompt.models import OpenCLIP
        >>> from mmprompt.models.prompt_learners import MaPLePromptLearner
        >>> clip = OpenCLIP('mmprompt-tiny-vit', pretrained=None)
        >>> learner = MaPLePromptLearner(clip, depth=2)
        >>> tokens, rows = learner.vision_prompts()
        >>> tokens.shape, sorted(rows)
        (torch.Size([2, 64]), [1])
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: int = 2,
                 ctx_init: str = 'a photo of a',
                 depth: int = 9,
                 fp16_rounding: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            clip,
            n_ctx=n_ctx,
            ctx_init=ctx_init,
            fp16_rounding=fp16_rounding,
            init_cfg=init_cfg)
        clip.check_vision_tokens('MaPLe prompts')
        blocks = min(len(clip.text_blocks), len(clip.vision_blocks))
        self.depth = _check_depth(depth, blocks, 'depth', 'text and vision')
        width, vision_width = clip.width, clip.vision_width
        self.proj = nn.Linear(width, vision_width).to(
            device=clip.device, dtype=clip.dtype)
        self.compound_prompts_text = _deep_tokens(depth - 1, self.n_ctx, width,
                                                  clip.device)
        coupling = nn.Linear(width, vision_width).to(clip.device)
        self.compound_prompt_projections = nn.ModuleList(
            [copy.deepcopy(coupling) for _ in range(depth - 1)])

    def text_rows(self) -> Dict[int, torch.Tensor]:
        return {j + 1: p for j, p in enumerate(self.compound_prompts_text)}

    def vision_prompts(self) -> VisionPrompts:
        rows = {
            j + 1: f(p)
            for j, (f, p) in enumerate(
                zip(self.compound_prompt_projections,
                    self.compound_prompts_text))
        }
        return self.proj(self.ctx), rows


@MODELS.register_module()
class VPTDeepPromptLearner(_VisionTokens, BaseModule):
    """Deep visual prompt tuning (VPT-deep, the original's VPT trainer):
    vision prompts per layer, no text prompt.

    ``vision_ctx`` ``(n, Wv)`` is appended before ``ln_pre`` and
    ``vision_deep[j - 1]`` written over it before vision block ``j``
    (``1 <= j < vision_depth``), as :class:`IVLPPromptLearner`'s vision
    half. The text side is not learned: ``VPTDeepHead`` scores the image
    features against the fixed features of ``"a photo of a {name}."``.

    Args:
        clip (OpenCLIP): The frozen CLIP (its image tower a ViT pooled at
            the class token).
        n_vision_ctx (int): Tokens per layer. Defaults to 8 (the
            original's ``VPT/vit_b16_c2_ep5_batch4_4`` config).
        vision_depth (int): Depth ``J`` (input and blocks ``1..J-1``).
            Defaults to 12.
        fp16_rounding (bool): Round every injected copy to fp16 as the
            original. Defaults to True.
        init_cfg (dict, optional): Unused. Defaults to None.
    """

    def __init__(self,
                 clip: nn.Module,
                 n_vision_ctx: int = 8,
                 vision_depth: int = 12,
                 fp16_rounding: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if clip is None:
            raise ValueError(
                'a prompt learner needs the frozen CLIP it prompts: build it '
                'through a head (or pass clip=OpenCLIP(...))')
        if not isinstance(fp16_rounding, bool):
            raise TypeError(
                f'fp16_rounding must be a bool, got {fp16_rounding!r}')
        object.__setattr__(self, 'clip', clip)
        self._fp16_rounding = fp16_rounding
        self._build_vision(clip, n_vision_ctx, vision_depth,
                           'VPT-deep prompts')

    fp16_rounding = DeepPromptLearner.fp16_rounding

    @property
    def rows_dtype(self) -> Optional[torch.dtype]:
        """fp16 with ``fp16_rounding``, else None."""
        return torch.float16 if self.fp16_rounding else None

    def forward(self) -> VisionPrompts:
        """``(tokens, {block: rows})``, as :meth:`vision_prompts`."""
        return self.vision_prompts()
