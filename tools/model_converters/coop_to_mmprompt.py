# Copyright (c) mmprompt contributors. All rights reserved.
"""Convert a prompt learner checkpoint of the original code: CoOp / CoCoOp
(KaiyangZhou/CoOp), KgCoOp (htyao89/KgCoOp), ProGrad
(BeierZhu/Prompt-align, CoOp's prompt learner), or MaPLe, IVLP, deep
language prompting and VPT-deep (muzairkhattak/multimodal-prompt-learning)
and PromptSRC (muzairkhattak/PromptSRC), whose trainers save the whole
model: ``MultiModalPromptLearner/``,
``VLPromptLearner/`` or ``prompt_learner/model.pth.tar-N``; only the
learned prompts are kept, the method is read from the keys and
``--method`` forces it).

The original writes ``<output>/prompt_learner/model.pth.tar-<epoch>`` as
``{'state_dict': {'ctx', ['meta_net.*',] 'token_prefix', 'token_suffix'},
'epoch': N, ...}`` (KgCoOp's also holds its unused ``bias_vectors`` and
``meta_net.linear1``; KgCoOp's and ProGrad's, saved by their forked Dassl,
a pickled scheduler, read as inert data). This
writes the mmengine checkpoint that ``tools/test.py`` (and ``load_from``)
read: ``{'meta': {...}, 'state_dict': {'head.prompt_learner.ctx', ...}}``.
The token buffers are dropped, as the original drops them on loading: they
are rebuilt from the class names being scored; so are KgCoOp's unused
modules (``mmprompt.utils.checkpoint_filter_fn`` has one case per
original).

Examples:
    python tools/model_converters/coop_to_mmprompt.py \\
        output/.../prompt_learner/model.pth.tar-10 coop_oxford_pets.pth
    python tools/model_converters/coop_to_mmprompt.py \\
        output/.../MultiModalPromptLearner/model.pth.tar-5 maple.pth
"""
import argparse
import io
import os.path as osp
import sys
from typing import List, Optional

# First: registers mmprompt's modules and the weights_only-safe loader.
import mmprompt  # noqa: F401  # isort: skip
import torch
from mmengine.logging import print_log

from mmprompt.utils import (LEARNER_PREFIX, UnsafeCheckpointError,
                            atomic_write, checkpoint_filter_fn,
                            load_checkpoint_file, original_format,
                            strip_prefix)

PROG = 'coop_to_mmprompt.py'
#: The originals whose checkpoints convert (``original_format``'s names).
SOURCES = {
    'CoOp/CoCoOp': 'KaiyangZhou/CoOp',
    'KgCoOp': 'htyao89/KgCoOp',
    'ProGrad': 'BeierZhu/Prompt-align',
    'MaPLe': 'muzairkhattak/multimodal-prompt-learning',
    'IVLP': 'muzairkhattak/multimodal-prompt-learning',
    'deep language prompting': 'muzairkhattak/multimodal-prompt-learning',
    'VPT-deep': 'muzairkhattak/multimodal-prompt-learning',
    'PromptSRC': 'muzairkhattak/PromptSRC',
}
#: --method's choices: the original's name in SOURCES.
METHODS = {
    'coop': 'CoOp/CoCoOp',
    'cocoop': 'CoOp/CoCoOp',
    'kgcoop': 'KgCoOp',
    'prograd': 'ProGrad',
    'maple': 'MaPLe',
    'ivlp': 'IVLP',
    'deep_language': 'deep language prompting',
    'vpt_deep': 'VPT-deep',
    'promptsrc': 'PromptSRC',
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Convert a prompt learner checkpoint of the original '
        'CoOp/CoCoOp, KgCoOp, ProGrad, MaPLe, IVLP, deep language prompting, '
        'VPT-deep or PromptSRC code (prompt_learner/model.pth.tar-N, '
        'MultiModalPromptLearner/..., VLPromptLearner/...) to mmprompt.')
    parser.add_argument(
        'src',
        help='the original checkpoint, e.g. '
        'output/.../prompt_learner/model.pth.tar-10')
    parser.add_argument('dst', help='the mmprompt checkpoint to write')
    parser.add_argument(
        '--force', action='store_true', help='overwrite DST if it exists')
    parser.add_argument(
        '--method',
        choices=sorted(METHODS),
        help='the method that wrote SRC, in place of the one its keys show '
        '(e.g. ivlp for an IVLP checkpoint of the PromptSRC repository)')
    return parser.parse_args(argv)


def convert(src: str,
            dst: str,
            force: bool = False,
            method: Optional[str] = None) -> dict:
    """Convert ``src`` and write it atomically to ``dst``.

    Args:
        src (str): The original checkpoint.
        dst (str): Where the mmprompt checkpoint goes.
        force (bool): Overwrite an existing ``dst``. Defaults to False.
        method (str, optional): One of :data:`METHODS`: the original that
            wrote ``src``, in place of the one its keys show.
            Defaults to None.

    Returns:
        dict: The written checkpoint.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        FileExistsError: ``dst`` exists and ``force`` is False.
        IsADirectoryError: ``dst`` is a folder.
        UnsafeCheckpointError: ``src`` holds a pickled object that could
            run code.
        CorruptCheckpointError: ``src`` is truncated, corrupt or a text
            file.
        ValueError: ``src`` is not a checkpoint of the original prompt
            learner.
        OSError: ``dst`` cannot be written (named).
    """
    if not osp.isfile(src):
        raise FileNotFoundError(f'source checkpoint {src!r}: no such file')
    if osp.isdir(dst):
        raise IsADirectoryError(
            f'{dst!r} is a folder; give the file to write, e.g. '
            f'{osp.join(dst, "coop.pth")!r}')
    if osp.exists(dst) and not force:
        raise FileExistsError(f'{dst!r} exists; pass --force to overwrite it')
    original = load_checkpoint_file(src, map_location='cpu')
    found = original.get('state_dict', original) if isinstance(original,
                                                               dict) else None
    if isinstance(found, dict) and any(
            k.startswith(LEARNER_PREFIX) for k in found):
        raise ValueError(
            f'{src!r} is already an mmprompt checkpoint (it holds '
            f'{LEARNER_PREFIX}* keys); tools/test.py reads it as it is')
    if method is not None and method not in METHODS:
        raise ValueError(f'method must be one of {sorted(METHODS)}, got '
                         f'{method!r}')
    source = original_format(original)
    if method is not None and source is not None:
        source = METHODS[method]
    if source is None:
        shown = list(found)[:8] if isinstance(found, dict) else \
            type(original).__name__
        raise ValueError(
            f'{src!r} is not a checkpoint of an original prompt learner '
            f"({', '.join(SOURCES)}): expected a 'state_dict' with 'ctx', "
            f'found {shown}')
    state_dict = checkpoint_filter_fn(original, source=source)
    # The conversion passes values through: converting the keys themselves
    # tells which original key each kept tensor comes from.
    keys = dict(original, state_dict={k: k for k in strip_prefix(found)})
    kept = set(checkpoint_filter_fn(keys, source=source).values())
    dropped = sorted(k for k in strip_prefix(found) if k not in kept)
    meta = dict(
        converted_from=osp.abspath(src),
        source=f'original {source} prompt learner ({SOURCES[source]})',
        epoch=original.get('epoch'),
        dropped_keys=dropped,
        mmprompt_version=mmprompt.__version__)
    checkpoint = dict(meta=meta, state_dict=state_dict)
    with io.BytesIO() as buffer:
        torch.save(checkpoint, buffer)
        # An interrupted run never leaves a truncated DST behind.
        try:
            atomic_write(dst, buffer.getvalue())
        except OSError as err:
            raise OSError(
                err.errno, f'cannot write {dst!r} ({err.strerror or err}); '
                'nothing was written: give a DST in a writable folder with '
                'free space') from err
    shapes = ', '.join(f'{k} {tuple(v.shape)}' for k, v in state_dict.items())
    print_log(
        f'{src} (epoch {meta["epoch"]}) -> {dst}: {shapes}; dropped '
        f'{dropped} (rebuilt from the class names, or unused by the '
        'original)',
        logger='current')
    return checkpoint


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the script."""
    args = parse_args(argv)
    try:
        convert(args.src, args.dst, force=args.force, method=args.method)
    except (OSError, UnsafeCheckpointError, ValueError) as err:
        message = err.strerror if isinstance(err, OSError) and \
            err.strerror and not err.filename else err
        sys.exit(f'{PROG}: error: {message}')


if __name__ == '__main__':
    main()
