# Copyright (c) mmprompt contributors. All rights reserved.
"""What prompt learners share: the context's initialisation and the frozen
tokens of the class names."""
import json
import logging
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from .prompts import ClassTokens, Prompts

__all__ = ['BasePromptLearner']

# The original's N_CTX: context vectors of a random init by default.
DEFAULT_N_CTX = 16


def _preview(names: Sequence[str], limit: int = 5) -> str:
    shown = ', '.join(repr(n) for n in list(names)[:limit])
    more = f', ... ({len(names)} in all)' if len(names) > limit else ''
    return f'[{shown}{more}]'


class BasePromptLearner(BaseModule):
    """Learnable context vectors ``[V]_1 ... [V]_M`` and the class-name tokens.

    A prompt for class ``i`` is laid out as CLIP would tokenize
    ``"<prefix> <name_i>."``: ``[SOT][V]_1..[V]_M[name_i][.][EOT][pad...]``,
    where the context replaces the ``M`` prefix tokens. The frozen token
    embeddings of these prompts (:meth:`class_tokens`) live in
    non-persistent buffers rebuilt by :meth:`set_class_names`: they are never
    saved, so a checkpoint scores any class names (except with class-specific
    contexts).

    A subclass's :meth:`forward` returns the :class:`Prompts` of every class:
    the method's equation is written there and nowhere else.

    Args:
        clip (OpenCLIP): The frozen CLIP the prompts are for.
        n_ctx (int, optional): Number of context vectors ``M`` for random
            init; None means 16 (the original's ``N_CTX``).
            Defaults to None.
        ctx_init (str): Words whose token embeddings initialise the context;
            as in the original CoOp and CoCoOp they set ``M`` to their
            number of BPE tokens, and an ``n_ctx`` that disagrees is ignored
            with a warning naming both. ``''`` initialises ``N(0, 0.02)``.
            Defaults to ''.
        csc (bool): One context per class (class-specific context, CoOp's
            CSC) instead of one shared by all. Needs ``num_classes``.
            Defaults to False.
        num_classes (int, optional): Number of classes, for ``csc=True``.
            Defaults to None.
        init_cfg (dict, optional): Unused. Defaults to None.
    """

    def __init__(self,
                 clip: nn.Module,
                 n_ctx: Optional[int] = None,
                 ctx_init: str = '',
                 csc: bool = False,
                 num_classes: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if clip is None:
            raise ValueError(
                'a prompt learner needs the frozen CLIP it prompts: build it '
                'through a head (or pass clip=OpenCLIP(...))')
        # The CLIP is shared with the classifier; not registered here.
        object.__setattr__(self, 'clip', clip)
        if not isinstance(ctx_init, str):
            raise TypeError(f'ctx_init must be a string, got {ctx_init!r}')
        ctx_init = ctx_init.replace('_', ' ').strip()
        if csc and ctx_init:
            raise ValueError(
                f'csc=True cannot be combined with ctx_init={ctx_init!r}: '
                'class-specific contexts are initialised at random (the '
                'original CoOp silently falls back to one shared context '
                "here). Use ctx_init='' with csc=True, or csc=False.")
        if csc and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(
                'csc=True learns one context per class, so the number of '
                f'classes must be known at build time: got num_classes='
                f'{num_classes!r}, expected a positive int')
        if n_ctx is not None and (not isinstance(n_ctx, int)
                                  or isinstance(n_ctx, bool) or n_ctx < 1):
            raise ValueError(f'n_ctx must be a positive int, got {n_ctx!r}')
        self.csc = csc
        self.ctx_init = ctx_init
        ctx, self.prompt_prefix = self._init_context(n_ctx, ctx_init, csc,
                                                     num_classes)
        self.n_ctx = ctx.shape[-2]
        self.ctx = nn.Parameter(ctx)
        self.class_names: List[str] = []
        # Bumped whenever the class names change, for caches downstream.
        self.names_version = 0
        # The frozen token embeddings of every class's prompt (K, L, W) and
        # where each is pooled (K, ): rebuilt by set_class_names, never saved.
        self.register_buffer('token_embeddings', None, persistent=False)
        self.register_buffer('eot_index', None, persistent=False)
        self.name_lens: List[int] = []
        # With csc: the classes the contexts belong to, once known.
        self.trained_class_names: Optional[List[str]] = None

    def _init_context(self, n_ctx: Optional[int], ctx_init: str, csc: bool,
                      num_classes: Optional[int]) -> Tuple[torch.Tensor, str]:
        clip = self.clip
        dtype = clip.dtype
        if ctx_init:
            bpe = clip.bpe_encode(ctx_init)
            words = ctx_init.split(' ')
            if len(bpe) != len(words):
                print_log(
                    f'ctx_init {ctx_init!r} has {len(words)} words but '
                    f'{len(bpe)} BPE tokens; the context gets {len(bpe)} '
                    'vectors, one per token (the original CoOp would take '
                    f'{len(words)} and misalign the class-name tokens)',
                    logger='current',
                    level=30)
            if n_ctx is not None and n_ctx != len(bpe):
                # The original's semantics (CoOp and CoCoOp alike): the
                # words set the number of context vectors and N_CTX is
                # ignored; its scripts pass N_CTX 16 with the ctxv1
                # configs. A warning rather than an error, so that such
                # settings keep giving the original's model.
                print_log(
                    f'n_ctx={n_ctx} is ignored: ctx_init={ctx_init!r} sets '
                    f'the context to its {len(bpe)} tokens, so the prompt '
                    f'learns {len(bpe)} context vectors, as the original '
                    f'CoOp and CoCoOp do. Set n_ctx={len(bpe)} (or leave it '
                    "out) to silence this, or ctx_init='' for "
                    f'{n_ctx} random vectors.',
                    logger='current',
                    level=logging.WARNING)
            tokens = clip.tokenize(ctx_init).to(clip.device)
            with torch.no_grad():
                embedding = clip.token_embedding(tokens).type(dtype)
            ctx = embedding[0, 1:1 + len(bpe)].clone()
            print_log(
                f'Initial context: {ctx_init!r} ({len(bpe)} tokens)',
                logger='current')
            return ctx, ctx_init
        n_ctx = DEFAULT_N_CTX if n_ctx is None else n_ctx
        shape = ((num_classes, n_ctx, clip.width) if csc else
                 (n_ctx, clip.width))
        ctx = torch.empty(shape, dtype=dtype, device=clip.device)
        nn.init.normal_(ctx, std=0.02)
        kind = 'class-specific contexts' if csc else 'a generic context'
        print_log(
            f'Initializing {kind}: {n_ctx} random vectors', logger='current')
        return ctx, ' '.join(['X'] * n_ctx)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _check_class_names(self, class_names: Sequence[str]) -> List[str]:
        if isinstance(class_names,
                      str) or not isinstance(class_names, Sequence):
            raise TypeError('class_names must be a sequence of strings, got '
                            f'{type(class_names).__name__}')
        names = list(class_names)
        if not names:
            raise ValueError('class_names is empty: give at least one class')
        bad = [n for n in names if not isinstance(n, str) or not n.strip()]
        if bad:
            raise ValueError(f'class names must be non-empty strings, got '
                             f'{bad[:5]}')
        seen, duplicates = set(), []
        for name in names:
            key = name.replace('_', ' ').strip().lower()
            if key in seen:
                duplicates.append(name)
            seen.add(key)
        if duplicates:
            raise ValueError(
                f'duplicate class names {duplicates[:5]}: two classes with '
                'the same prompt cannot be told apart')
        return names

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Build the frozen token embeddings of each class's prompt.

        Args:
            class_names (Sequence[str]): The classes to score, in label
                order. ``_`` is read as a space, as in CoOp.
        """
        names = self._check_class_names(class_names)
        if self.csc and self.trained_class_names not in (None, names):
            raise ValueError(
                'this prompt learner has class-specific contexts, learned '
                f'for the classes {_preview(self.trained_class_names)}, and '
                f'cannot score {_preview(names)}: a class-specific context '
                'belongs to one class and means nothing for another. Use a '
                'shared context (csc=False) to transfer to new classes.')
        if (self.csc and self.ctx.shape[0] != len(names)
                and self.trained_class_names is None):
            raise ValueError(
                f'csc=True with num_classes={self.ctx.shape[0]}, but the '
                f'data has {len(names)} classes {_preview(names)}: set '
                f'num_classes={len(names)} (model.head.prompt_learner.'
                'num_classes in a config), the number of classes the '
                'class-specific contexts are learned for. (If these '
                'contexts come from a checkpoint, it was trained on '
                f'{self.ctx.shape[0]} classes and cannot score these.)')
        if self.csc and self.ctx.shape[0] != len(names):
            raise ValueError(
                f'this prompt learner has class-specific contexts for '
                f'{self.ctx.shape[0]} classes and cannot score '
                f'{len(names)} classes: a class-specific context is learned '
                'for one class and means nothing for another. Use a shared '
                'context (csc=False) to transfer to new classes.')
        clip = self.clip
        readable = [n.replace('_', ' ') for n in names]
        prompts = [f'{self.prompt_prefix} {n}.' for n in readable]
        for name, prompt in zip(names, prompts):
            length = len(clip.bpe_encode(prompt)) + 2  # SOT and EOT
            if length > clip.context_length:
                raise ValueError(
                    f'the class name {name!r} makes its prompt {length} '
                    f'tokens long ({self.n_ctx} context tokens + name + '
                    f"'.'), more than the {clip.context_length} the text "
                    'tower takes; shorten the class name or use fewer '
                    'context tokens')
        tokens = clip.tokenize(prompts).to(clip.device)
        with torch.no_grad():
            embedding = clip.token_embedding(tokens).type(clip.dtype)
        self.name_lens = [len(clip.bpe_encode(n)) for n in readable]
        self.token_embeddings = embedding  # (K, L, W)
        self.eot_index = clip.eot_positions(tokens)  # (K, )
        self.class_names = names
        self.names_version += 1
        if self.csc:
            self.trained_class_names = list(names)

    def get_extra_state(self) -> torch.Tensor:
        """Saved with the parameters: the classes of class-specific contexts,
        as UTF-8 JSON bytes (empty otherwise).

        A tensor rather than a Python object, because mmengine broadcasts
        every ``state_dict()`` value between processes before distributed
        training, and its broadcast takes tensors only.
        """
        if not self.csc or self.trained_class_names is None:
            return torch.zeros(0, dtype=torch.uint8)
        data = json.dumps(self.trained_class_names).encode('utf-8')
        return torch.tensor(list(data), dtype=torch.uint8)

    def set_extra_state(self, state) -> None:
        if isinstance(state, torch.Tensor):
            names = (
                json.loads(bytes(state.tolist()).decode('utf-8'))
                if state.numel() else None)
        elif isinstance(state, dict):  # written by mmprompt 0.1 pre-release
            names = state.get('csc_class_names')
        else:
            names = None
        if not self.csc or names is None:
            return
        if self.class_names and list(names) != self.class_names:
            raise ValueError(
                'the checkpoint holds class-specific contexts learned for '
                f'{_preview(names)}, but this model scores '
                f'{_preview(self.class_names)}; class-specific contexts '
                'cannot be moved to other classes')
        self.trained_class_names = list(names)

    def class_tokens(self) -> ClassTokens:
        """The frozen token embeddings of the prompts of the classes set by
        :meth:`set_class_names`."""
        if self.token_embeddings is None:
            raise RuntimeError(
                'no class names are set: call set_class_names(names) (the '
                "runner does it from the dataset's metainfo['classes'] "
                'through ClassNamesHook)')
        return ClassTokens(
            embeddings=self.token_embeddings,
            eot=self.eot_index,
            n_ctx=self.n_ctx,
            name_lengths=tuple(self.name_lens),
            version=self.names_version)

    def forward(self, *args, **kwargs) -> Prompts:
        """The prompts of every class: the method's equation.

        Returns:
            Prompts: Context, class tokens and layout.
        """
        raise NotImplementedError
