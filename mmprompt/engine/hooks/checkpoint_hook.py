# Copyright (c) mmprompt contributors. All rights reserved.
"""The checkpoint hook whose checkpoints survive a kill at any moment.

``docs/reliability.md`` states what is guaranteed and which test proves it.
"""
import os.path as osp
import re
from pathlib import Path
from typing import Any, Optional, Union

from mmengine.dist import barrier, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from mmprompt.engine.rng import get_rng_state, set_rng_state
from mmprompt.registry import HOOKS
from mmprompt.utils import (ATOMIC_BACKEND, POINTER, atomic_write,
                            find_last_valid_checkpoint, read_pointer,
                            record_trained_on, remove_partial_writes, repoint)
from .checkpoint_fit_hook import training_classes

__all__ = ['SafeCheckpointHook']


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive a kill at any moment.

    Takes every argument of :class:`mmengine.hooks.CheckpointHook` and
    changes five things, all through mmengine's public extension points:

    * **Atomic writes.** For a local folder, and unless ``backend_args`` or
      ``file_client_args`` say otherwise, ``backend_args`` defaults to
      ``dict(backend='atomic_local')``: mmengine's ``save_checkpoint``
      writes through that registered file backend
      (:class:`~mmprompt.utils.AtomicLocalBackend`), which writes a hidden
      temporary file in the folder and moves it into place with
      :func:`os.replace`. A kill leaves the previous checkpoint and a
      temporary file (removed when the run resumes), never a half-written
      file under a checkpoint's name.
    * **Pruning after writing.** mmengine removes the oldest checkpoint
      *before* writing the new one. Here ``max_keep_ckpts`` is not passed
      on to mmengine; after each save (``after_train_epoch``,
      ``after_train_iter``, ``after_val_epoch``) the checkpoints of this
      template with a step up to the new one's are pruned to the newest
      ``max_keep_ckpts``. A kill between the two leaves one checkpoint too
      many, removed at the next save.
    * **Verified auto-resume.** ``resume=True`` without ``load_from``
      skips a checkpoint that does not read and resumes from the last one
      that does, with a warning
      (:func:`~mmprompt.utils.find_last_valid_checkpoint`), by making
      ``last_checkpoint`` name it before mmengine reads it
      (``before_run``). A work dir copied or moved elsewhere resumes from
      its own checkpoint, not the old folder's that the pointer's absolute
      path names (:func:`~mmprompt.utils.repoint`).
    * **What the model is.** Each checkpoint records the CLIP, head and
      prompt learner it was trained with and the training classes
      (``meta['trained_on']``, :func:`~mmprompt.utils.record_trained_on`),
      which ``CheckpointFitHook`` compares when it is loaded.
    * **Random generators.** Python's, numpy's, torch's (and CUDA's)
      states are saved with each checkpoint (``before_save_checkpoint``)
      and restored at the start of resumed training (``before_train``,
      after mmengine's reseeding); validation during training leaves them
      as it found them (``before_val``/``after_val``). So a resumed run
      draws the same augmentations as an uninterrupted one and ends
      bit-identical.

    Where mmengine 0.10 has no public hook point:

    * ``last_checkpoint`` is written by ``CheckpointHook`` with a plain
      ``open()`` (not through the file backend), right after the
      checkpoint is in place. A kill during that write of a few bytes
      leaves a torn pointer; verified auto-resume then resumes from the
      newest readable checkpoint, which is the one just written. (A later
      mmengine that writes it through the backend's ``put_text`` makes it
      atomic too.)
    * Whether the runner resumes automatically is only in the runner's
      private ``_resume`` and ``_load_from``; ``before_run`` reads them.

    Remote folders (``out_dir`` as a URL, or ``backend_args`` of another
    backend) are written by that backend as mmengine writes them; pruning
    still happens after writing.

    Args:
        interval (int): The saving period, in epochs or iterations.
            Defaults to -1 (never).
        by_epoch (bool): Save by epoch or by iteration. Defaults to True.
        max_keep_ckpts (int): How many checkpoints of the template to
            keep; -1 keeps all. Defaults to -1.
        out_dir (str | Path, optional): As in ``CheckpointHook``.
            Defaults to None (the work dir).
        backend_args (dict, optional): As in ``CheckpointHook``.
            Defaults to None: ``dict(backend='atomic_local')`` for a local
            folder.
        file_client_args (dict, optional): Deprecated by mmengine; as in
            ``CheckpointHook``. Defaults to None.
        **kwargs: The other arguments of ``CheckpointHook``.

    Examples:
        >>> default_hooks = dict(
        ...     checkpoint=dict(
        ...         type='SafeCheckpointHook', interval=1, max_keep_ckpts=2))
        >>> hook = SafeCheckpointHook(interval=1, max_keep_ckpts=2)
        >>> hook.backend_args, hook.max_keep_ckpts, hook.keep_ckpts
        ({'backend': 'atomic_local'}, -1, 2)
    """

    def __init__(self,
                 interval: int = -1,
                 by_epoch: bool = True,
                 *,
                 max_keep_ckpts: int = -1,
                 out_dir: Optional[Union[str, Path]] = None,
                 backend_args: Optional[dict] = None,
                 file_client_args: Optional[dict] = None,
                 **kwargs) -> None:
        if backend_args is None and file_client_args is None \
                and '://' not in str(out_dir or ''):
            backend_args = dict(backend=ATOMIC_BACKEND)
        # CheckpointHook prunes before writing when max_keep_ckpts > 0.
        super().__init__(
            interval=interval,
            by_epoch=by_epoch,
            out_dir=out_dir,
            max_keep_ckpts=-1,
            backend_args=backend_args,
            file_client_args=file_client_args,
            **kwargs)
        self.keep_ckpts = max_keep_ckpts
        self._saved = False
        self._resumed_rng = None
        self._val_rng = None

    # -- resume --------------------------------------------------------------
    def before_run(self, runner) -> None:
        """Point auto-resume at the last checkpoint that reads."""
        # No public accessor for these in mmengine 0.10.
        if not (runner._resume and runner._load_from is None):
            return
        folders = []
        if self.out_dir is not None and '://' not in str(self.out_dir):
            folders.append(
                osp.join(self.out_dir,
                         osp.basename(runner.work_dir.rstrip(osp.sep))))
        if is_main_process():
            # A copied or moved work dir: its own checkpoint, not the old
            # folder's that the absolute path in the pointer names.
            repoint(runner.work_dir)
        barrier()
        named = read_pointer(runner.work_dir, resolve=False)
        found = find_last_valid_checkpoint(runner.work_dir, folders)
        # mmengine's auto-resume reads the pointer: make it name the file.
        if found is not None and found != named and is_main_process():
            atomic_write(osp.join(runner.work_dir, POINTER), found.encode())
        barrier()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the saved generator states for :meth:`before_train`."""
        self._resumed_rng = checkpoint.get('rng_state')

    def before_train(self, runner) -> None:
        """Restore the generators of a resumed run; remove temporary files
        left by a write that was killed."""
        super().before_train(runner)
        # After Runner.resume, which may reseed: restore last.
        if self._resumed_rng is not None and runner.iter > 0:
            set_rng_state(self._resumed_rng)
        self._resumed_rng = None
        if isinstance(self.file_backend, LocalBackend) and is_main_process():
            for folder in {self.out_dir, runner.work_dir}:
                remove_partial_writes(folder)

    # -- validation does not draw from the training generators ---------------
    def before_val(self, runner) -> None:
        """Remember the generators' states."""
        self._val_rng = get_rng_state()

    def after_val(self, runner) -> None:
        """Give the generators the states they had before validation."""
        if self._val_rng is not None:
            set_rng_state(self._val_rng)
        self._val_rng = None

    # -- saving --------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add the generators' states to the checkpoint, and what the model
        was trained with (``meta['trained_on']``)."""
        checkpoint['rng_state'] = get_rng_state()
        record_trained_on(checkpoint, runner.model, training_classes(runner))
        self._saved = True

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        """Save as ``CheckpointHook`` does, then prune."""
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self._prune_after_save()

    def after_train_epoch(self, runner) -> None:
        """Save as ``CheckpointHook`` does, then prune."""
        super().after_train_epoch(runner)
        self._prune_after_save()

    def after_val_epoch(self, runner, metrics) -> None:
        """Save the best checkpoint as ``CheckpointHook`` does, then
        prune."""
        super().after_val_epoch(runner, metrics)
        self._prune_after_save()

    def _prune_after_save(self) -> None:
        """Keep the newest ``keep_ckpts`` checkpoints of the template up to
        the one just written (newer ones are of an abandoned branch of the
        run and will be overwritten)."""
        saved, self._saved = self._saved, False
        if not saved or self.keep_ckpts <= 0 or self.last_ckpt is None \
                or not is_main_process():
            return
        # 'epoch_{}.pth' -> ^epoch_(\d+)\.pth$
        template = re.escape(self.filename_tmpl).replace(
            re.escape('{}'), r'(\d+)')
        pattern = re.compile(f'^{template}$')
        found = pattern.match(osp.basename(str(self.last_ckpt)))
        if found is None:
            return
        last = int(found.group(1))
        steps = []
        for name in self.file_backend.list_dir_or_file(self.out_dir):
            step = pattern.match(name)
            if step is not None and int(step.group(1)) <= last:
                steps.append(int(step.group(1)))
        steps.sort(reverse=True)
        for step in steps[self.keep_ckpts:]:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(step))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)
