# Copyright (c) mmprompt contributors. All rights reserved.
"""A tiny prompt model, built as the tests and the docs' examples need it."""
from typing import Optional

from mmprompt.registry import MODELS

__all__ = ['tiny_prompt_classifier']

_LEARNERS = dict(
    CoOpHead='CoOpPromptLearner', CoCoOpHead='CoCoOpPromptLearner')


def tiny_prompt_classifier(head: str = 'CoOpHead',
                           arch: str = 'mmprompt-tiny-vit',
                           class_names: Optional[list] = None,
                           **learner):
    """A :class:`~mmprompt.models.PromptClassifier` on a random tiny CLIP.

    Args:
        head (str): ``'CoOpHead'`` or ``'CoCoOpHead'``; the prompt learner is
            the method's own. Defaults to 'CoOpHead'.
        arch (str): The tiny CLIP. Defaults to 'mmprompt-tiny-vit'.
        class_names (list[str], optional): Classes to score from the start.
            Defaults to None.
        **learner: The prompt learner's options, e.g. ``n_ctx=4``.

    Returns:
        PromptClassifier: The model, with random CLIP weights.

    Examples:
        >>> model = tiny_prompt_classifier(n_ctx=4, class_names=['a', 'b'])
        >>> model.head.prompt_learner.ctx.shape
        torch.Size([4, 64])
    """
    if head not in _LEARNERS:
        raise ValueError(f'head must be one of {sorted(_LEARNERS)}, got '
                         f'{head!r}')
    return MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(type='OpenCLIP', arch=arch, pretrained=None),
            head=dict(
                type=head,
                prompt_learner=dict(type=_LEARNERS[head], **learner)),
            class_names=class_names))
