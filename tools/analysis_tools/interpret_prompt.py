# Copyright (c) mmprompt contributors. All rights reserved.
"""Read a learned prompt as words: the nearest vocabulary tokens per vector.

For every context vector ``[V]_m`` this prints the ``K`` tokens of the
CLIP vocabulary whose token embeddings are nearest in Euclidean distance,
as CoOp's ``interpret_prompt.py`` does, but with the token embedding of the
CLIP of the config the prompt was learned with (the original always uses
RN50's, which is silently wrong for ViT prompts), and for class-specific
contexts too (one block per class).

Examples:
    python tools/analysis_tools/interpret_prompt.py \\
        configs/coop_vit-b16.py work_dirs/coop_vit-b16/epoch_50.pth --topk 5
    # a checkpoint of the original code works as it is
    python tools/analysis_tools/interpret_prompt.py \\
        CONFIG output/.../prompt_learner/model.pth.tar-50 --topk 3
"""
import argparse
import json
import logging
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

# First: registers mmprompt's modules and the weights_only-safe loader.
import mmprompt  # noqa: F401  # isort: skip
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import init_default_scope

from mmprompt.registry import MODELS
from mmprompt.utils import UnsafeCheckpointError, load_checkpoint_file
from mmprompt.utils.checkpoint import checkpoint_filter_fn

PROG = 'interpret_prompt.py'
CTX_KEY = 'head.prompt_learner.ctx'
EXTRA_STATE_KEY = 'head.prompt_learner._extra_state'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Print the vocabulary tokens nearest to each learned '
        'context vector of a CoOp/CoCoOp prompt.')
    parser.add_argument(
        'config',
        help='the config the prompt was trained with; its '
        'model.clip gives the token embedding')
    parser.add_argument(
        'checkpoint',
        help='a checkpoint of tools/train.py or of the original CoOp code '
        '(prompt_learner/model.pth.tar-N)')
    parser.add_argument(
        '--topk',
        type=int,
        default=5,
        help='how many nearest tokens to print per context vector '
        '(default: 5)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. '
        'model.clip.pretrained=weights/ViT-B-16.pt')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be a positive int, got {args.topk}')
    return args


def read_context(checkpoint: dict,
                 source: str = 'the checkpoint'
                 ) -> Tuple[torch.Tensor, Optional[List[str]]]:
    """The learned context of a checkpoint, in either format.

    Args:
        checkpoint (dict): A loaded checkpoint of mmprompt
            (``state_dict['head.prompt_learner.ctx']``) or of the original
            code (``state_dict['ctx']``).
        source (str): How to name the checkpoint in errors.

    Returns:
        tuple: ``ctx`` as float, ``(M, W)`` or ``(K, M, W)`` for
        class-specific contexts, and the class names of class-specific
        contexts if the checkpoint knows them, else None.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{source} holds a {type(checkpoint).__name__}, not '
                         'a dict with a state_dict')
    # mmprompt's keys, whatever wrote it (an original's ctx is moved under
    # the prompt learner, a DDP prefix removed)
    state_dict = checkpoint_filter_fn(checkpoint)
    ctx = state_dict.get(CTX_KEY)
    if ctx is None:
        raise ValueError(
            f'{source} holds no learned context: expected the key '
            f"{CTX_KEY!r} (tools/train.py) or 'ctx' (the original CoOp), "
            f'found {sorted(state_dict)[:8]}')
    if not isinstance(ctx, torch.Tensor) or ctx.dim() not in (2, 3):
        raise ValueError(
            f'the context in {source} must be a tensor (M, W) or, '
            'class-specific, (K, M, W); got '
            f'{getattr(ctx, "shape", type(ctx).__name__)}')
    extra = state_dict.get(EXTRA_STATE_KEY)
    names = None
    if isinstance(extra, torch.Tensor) and extra.numel():
        # the classes of class-specific contexts, as UTF-8 JSON bytes
        names = json.loads(bytes(extra.tolist()).decode('utf-8'))
    elif isinstance(extra, dict):  # written by mmprompt 0.1 pre-release
        names = extra.get('csc_class_names')
    return ctx.float(), (list(names) if names else None)


def decode_token(tokenizer, token_id: int) -> str:
    """A readable word for one BPE token id of open_clip's tokenizer.

    ``tokenizer.decoder`` maps ids to BPE strings whose characters stand for
    bytes (``'cafÃ©</w>'``); this maps them back to UTF-8 and drops the
    end-of-word mark ``</w>``.
    """
    token = tokenizer.decoder[token_id]
    byte_decoder = getattr(tokenizer, 'byte_decoder', None)
    if byte_decoder is not None:
        token = bytearray(byte_decoder.get(c, ord('?')) for c in token).decode(
            'utf-8', errors='replace')
    return token.replace('</w>', '')


def nearest_tokens(ctx: torch.Tensor, token_embedding: torch.Tensor,
                   topk: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``topk`` nearest token embeddings of every context vector.

    Args:
        ctx (Tensor): Context vectors ``(..., M, W)``.
        token_embedding (Tensor): The vocabulary's embeddings ``(V, W)``.
        topk (int): How many per vector.

    Returns:
        tuple[Tensor, Tensor]: Euclidean distances and token ids, both
        ``(..., M, topk)``, nearest first.
    """
    if ctx.shape[-1] != token_embedding.shape[-1]:
        raise ValueError(
            f'the context vectors have width {ctx.shape[-1]}, but the token '
            f'embedding of the CLIP of the config has width '
            f'{token_embedding.shape[-1]}: use the config (model.clip.arch) '
            'the prompt was trained with')
    topk = min(topk, token_embedding.shape[0])
    vocab = token_embedding.float()
    flat = ctx.float().reshape(-1, ctx.shape[-1])  # (N·M, W)
    # cdist's fast matrix-product form loses ~1e-4 to cancellation (a
    # vector equal to a token would print as 0.0001 away from it): rank
    # with it, then measure a margin of candidates exactly.
    candidates = min(topk + 16, vocab.shape[0])
    rough = torch.cdist(flat, vocab)  # (N·M, V)
    ids = rough.topk(candidates, dim=-1, largest=False).indices  # (N·M, C)
    exact = (flat[:, None] - vocab[ids]).norm(dim=-1)  # (N·M, C)
    values, order = exact.topk(topk, dim=-1, largest=False)
    indices = ids.gather(-1, order)
    shape = ctx.shape[:-1] + (topk, )
    return values.reshape(shape), indices.reshape(shape)


def interpret_prompt(
    ctx: torch.Tensor,
    token_embedding: torch.Tensor,
    tokenizer,
    topk: int,
    class_names: Optional[Sequence[str]] = None
) -> Dict[str, List[List[Tuple[str, float]]]]:
    """Nearest words of every context vector.

    Args:
        ctx (Tensor): ``(M, W)``, or ``(K, M, W)`` for class-specific
            contexts.
        token_embedding (Tensor): ``(V, W)``, of the CLIP the context was
            learned for.
        tokenizer: open_clip's ``SimpleTokenizer`` (``decoder``).
        topk (int): Words per vector.
        class_names (Sequence[str], optional): Names of the ``K`` contexts
            of a class-specific ``ctx``. Defaults to ``class 0``, ...

    Returns:
        dict: ``{'': [[(word, distance)] * topk] * M}`` for a shared
        context; for class-specific contexts one such list per class name.

    Examples:
        >>> import torch
        >>> from open_clip.tokenizer import SimpleTokenizer
        >>> tokenizer = SimpleTokenizer()
        >>> table = torch.randn(len(tokenizer.decoder), 8)
        >>> ids = tokenizer.encode('a photo of a')
        >>> words = interpret_prompt(table[ids], table, tokenizer, topk=2)
        >>> [vector[0][0] for vector in words['']]
        ['a', 'photo', 'of', 'a']
    """
    if not hasattr(tokenizer, 'decoder'):
        raise ValueError(
            f'the tokenizer {type(tokenizer).__name__} has no BPE decoder; '
            "interpret_prompt needs open_clip's SimpleTokenizer (CLIP's "
            'own vocabulary)')
    distances, indices = nearest_tokens(ctx, token_embedding, topk)
    if ctx.dim() == 2:
        distances, indices = distances[None], indices[None]
        names = ['']
    else:
        names = list(class_names) if class_names else [
            f'class {i}' for i in range(ctx.shape[0])
        ]
        if len(names) != ctx.shape[0]:
            raise ValueError(
                f'{len(names)} class names for {ctx.shape[0]} class-specific '
                'contexts')
    result = {}
    for name, dist, ids in zip(names, distances.tolist(), indices.tolist()):
        result[name] = [[(decode_token(tokenizer, i), d)
                         for i, d in zip(vector_ids, vector_dist)]
                        for vector_ids, vector_dist in zip(ids, dist)]
    return result


def format_words(words: Dict[str, List[List[Tuple[str, float]]]]) -> str:
    """Lines for the terminal: one per context vector, distances to 4
    decimals, e.g. ``ctx 1: a 0.0000 | an 0.7512``."""
    lines = []
    for name, vectors in words.items():
        if name:
            lines.append(f'{name}:')
        indent = '  ' if name else ''
        for m, vector in enumerate(vectors, 1):
            pairs = ' | '.join(f'{w} {d:.4f}' for w, d in vector)
            lines.append(f'{indent}ctx {m}: {pairs}')
    return '\n'.join(lines)


def build_clip(cfg: Config):
    """The OpenCLIP of ``cfg.model.clip``, with its own token embedding."""
    clip_cfg = cfg.get('model', {}).get('clip')
    if clip_cfg is None:
        raise ValueError('the config has no model.clip: interpret_prompt '
                         'needs the CLIP the prompt was trained with')
    init_default_scope(cfg.get('default_scope', 'mmprompt'))
    clip = MODELS.build(clip_cfg)
    if getattr(clip, 'pretrained', 'set') is None:
        print_log(
            'model.clip.pretrained is None: the CLIP has random weights, so '
            'the nearest words say nothing about a prompt trained on real '
            'weights; point it at the weights used in training',
            logger='current',
            level=logging.WARNING)
    return clip


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the script."""
    args = parse_args(argv)
    for kind, path in (('config', args.config), ('checkpoint',
                                                 args.checkpoint)):
        if not osp.isfile(path):
            sys.exit(f'{PROG}: error: {kind} {path!r}: no such file')
    try:
        checkpoint = load_checkpoint_file(args.checkpoint, map_location='cpu')
        ctx, class_names = read_context(checkpoint, repr(args.checkpoint))
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        clip = build_clip(cfg)
        words = interpret_prompt(ctx, clip.token_embedding.weight.detach(),
                                 clip.tokenizer, args.topk, class_names)
    except (UnsafeCheckpointError, ValueError) as err:
        sys.exit(f'{PROG}: error: {err}')
    shape = 'x'.join(str(s) for s in ctx.shape)
    print(f'Context {shape} of {args.checkpoint}, nearest {args.topk} of '
          f'{clip.token_embedding.weight.shape[0]} tokens by Euclidean '
          'distance:')
    print(format_words(words))


if __name__ == '__main__':
    main()
