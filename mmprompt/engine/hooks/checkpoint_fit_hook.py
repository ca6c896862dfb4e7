# Copyright (c) mmprompt contributors. All rights reserved.
"""The hook that reads original checkpoints and refuses unfitting ones:
of other shapes, or trained with another CLIP or prompt learner."""
import os.path as osp
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmprompt.registry import HOOKS
from mmprompt.utils import (POINTER, check_checkpoint_fits, check_trained_on,
                            checkpoint_filter_fn, original_format,
                            read_pointer, record_trained_on)

__all__ = ['CheckpointFitHook']


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Convert checkpoints of the original code and refuse ones that do not
    fit the model, before they are loaded.

    mmengine loads checkpoints with ``strict=False``: a missing or
    misshapen ``ctx`` would leave the random initial context in place and
    give a meaningless accuracy without an error. On
    ``after_load_checkpoint``, which mmengine calls with the checkpoint it
    is about to load (``load_from``, ``--resume``, ``tools/test.py CKPT``),
    this hook

    1. converts a checkpoint of the original code (e.g. CoOp's
       ``prompt_learner/model.pth.tar-N``) in memory, in place, with
       :func:`~mmprompt.utils.checkpoint_filter_fn`, so that the runner
       loads mmprompt's keys;
    2. requires every learned tensor of the model, with its shape
       (:func:`~mmprompt.utils.check_checkpoint_fits`), raising
       :class:`~mmprompt.utils.CheckpointMismatchError` otherwise;
    3. refuses a checkpoint trained with another CLIP (arch or weights),
       head or prompt learner (type or options such as
       ``class_token_position``) than the model, as its
       ``meta['trained_on']`` records
       (:func:`~mmprompt.utils.check_trained_on`): shapes that fit do not
       make the same model. Checkpoints without the record (older ones,
       converted originals) load with a warning.

    On ``before_save_checkpoint`` it records ``meta['trained_on']``
    (:func:`~mmprompt.utils.record_trained_on`, with the training set's
    classes), as ``SafeCheckpointHook`` does, for configs saving with
    another checkpoint hook.

    ``tools/train.py`` and ``tools/test.py`` register it.

    Args:
        checkpoint (str, optional): The checkpoint's path, for messages.
            Defaults to None: the config's ``load_from``, else what the
            work dir's ``last_checkpoint`` names.
        ignore_meta (bool): Load a checkpoint trained with another model
            than this one all the same, with a warning naming the
            differences (``--ignore-checkpoint-meta`` of the tools).
            Defaults to False.

    Examples:
        >>> custom_hooks = [dict(type='CheckpointFitHook')]
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 checkpoint: Optional[str] = None,
                 ignore_meta: bool = False) -> None:
        self.checkpoint = checkpoint
        self.ignore_meta = ignore_meta

    def _path(self, runner) -> str:
        if self.checkpoint is not None:
            return str(self.checkpoint)
        load_from = runner.cfg.get('load_from')
        if load_from:
            return str(load_from)
        return read_pointer(runner.work_dir) or osp.join(
            runner.work_dir, POINTER)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Convert ``checkpoint`` in place if the original code wrote it;
        refuse it if it does not fit ``runner.model``."""
        path = self._path(runner)
        source = original_format(checkpoint)
        if source is not None:
            print_log(
                f'{path} is a checkpoint of the original {source} code; '
                'converting it in memory (tools/model_converters/'
                'coop_to_mmprompt.py converts it once for all)',
                logger='current')
            converted = checkpoint_filter_fn(checkpoint, runner.model)
            epoch = checkpoint.get('epoch')
            # In place: the runner loads the dict it passed to the hooks.
            checkpoint.clear()
            checkpoint.update(
                state_dict=converted,
                meta=dict(epoch=epoch, converted_from=path))
        check_checkpoint_fits(runner.model,
                              checkpoint.get('state_dict', checkpoint), path)
        check_trained_on(
            checkpoint, runner.model, path, ignore=self.ignore_meta)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record in ``checkpoint['meta']`` what the model is and the
        classes it is trained on."""
        record_trained_on(checkpoint, runner.model, training_classes(runner))


def training_classes(runner) -> Optional[List[str]]:
    """The classes of ``runner``'s training set, if it has one built."""
    try:
        dataset = runner.train_dataloader.dataset
    except Exception:  # no training set (a test run) or not built
        return None
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    return list(classes) if classes else None
