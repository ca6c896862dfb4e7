# Copyright (c) mmprompt contributors. All rights reserved.
"""Training that survives crashes, stops on a non-finite loss and explains
bad configs.

* :class:`SafeCheckpointHook`: mmengine's ``CheckpointHook`` with atomic
  writes (a checkpoint and the ``last_checkpoint`` pointer are written to a
  temporary file in the same folder and moved into place with
  :func:`os.replace`), old checkpoints pruned only after the new one is in
  place, auto-resume that skips an unreadable checkpoint, and the random
  number generators saved and restored, so that a resumed run ends with the
  same weights as one never interrupted.
* :class:`FiniteLossHook`: stops training at the first infinite or NaN loss,
  naming the iteration (the original's Dassl ``detect_anomaly``).
* :func:`existing_checkpoints`, :func:`find_last_valid_checkpoint`,
  :func:`check_checkpoint_fits` and :func:`registry_hint`: the checks
  ``tools/train.py`` runs before and around the Runner.

``docs/reliability.md`` states what is guaranteed and which test proves it.
"""
import difflib
import glob
import logging
import os
import os.path as osp
import random
import re
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import barrier, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmprompt.registry import HOOKS
from mmprompt.utils import load_checkpoint_file

__all__ = [
    'SafeCheckpointHook', 'FiniteLossHook', 'CheckpointMismatchError',
    'atomic_write', 'existing_checkpoints', 'find_last_valid_checkpoint',
    'check_checkpoint_fits', 'registry_hint', 'get_rng_state', 'set_rng_state'
]

#: Names of checkpoints written by mmengine's CheckpointHook.
CHECKPOINT_PATTERNS = ('epoch_*.pth', 'iter_*.pth', 'best_*.pth')
POINTER = 'last_checkpoint'
_TMP_MARK = '.tmp-'


def _tmp_path(path: str) -> str:
    """A temporary name in the folder of ``path`` (same file system, so
    :func:`os.replace` is atomic), hidden and unique to this process."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}{_TMP_MARK}{os.getpid()}')


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or
    the whole new one, whenever the process is killed.

    Args:
        path (str): The destination.
        data (bytes): The whole content.
    """
    tmp = _tmp_path(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            # Without fsync a power loss may leave a renamed empty file.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def _step_of(path: str) -> int:
    found = re.search(r'_(\d+)\.pth$', path)
    return int(found.group(1)) if found else -1


def existing_checkpoints(work_dir: str) -> List[str]:
    """The checkpoints (and ``last_checkpoint``) of a run in ``work_dir``.

    Args:
        work_dir (str): A work dir.

    Returns:
        list[str]: Their file names, sorted; empty for a fresh folder.
    """
    if not osp.isdir(work_dir):
        return []
    names = set()
    for pattern in CHECKPOINT_PATTERNS + (POINTER, ):
        names.update(
            osp.basename(p) for p in glob.glob(osp.join(work_dir, pattern)))
    return sorted(names, key=lambda n: (_step_of(n), n))


def is_valid_checkpoint(path: str) -> bool:
    """Whether ``path`` reads (weights-only) as a checkpoint to resume from:
    a dict with ``state_dict`` and the ``meta`` epoch and iteration."""
    if not osp.isfile(path):
        return False
    try:
        checkpoint = load_checkpoint_file(path, map_location='cpu')
    except Exception:  # truncated, corrupt, unsafe: not one to resume from
        return False
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return (isinstance(checkpoint.get('state_dict'), dict)
            and isinstance(meta, dict) and 'epoch' in meta and 'iter' in meta)


def find_last_valid_checkpoint(work_dir: str,
                               folders: Sequence[str] = ()) -> Optional[str]:
    """The checkpoint auto-resume should use, skipping unreadable ones.

    The one ``work_dir/last_checkpoint`` names if it reads; otherwise the
    readable ``epoch_N.pth`` / ``iter_N.pth`` with the largest ``N`` in its
    folder, ``work_dir`` and ``folders``, with a warning naming the file
    skipped.

    Args:
        work_dir (str): The run's work dir.
        folders (Sequence[str]): Other folders checkpoints are written to
            (``CheckpointHook(out_dir=...)``). Defaults to ().

    Returns:
        str | None: The checkpoint, or None if there is none.
    """
    pointer = osp.join(work_dir, POINTER)
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
        if named is not None and is_valid_checkpoint(named):
            return named
    search = [work_dir] + list(folders)
    if named is not None:
        search.insert(0, osp.dirname(named))
    candidates = set()
    for folder in search:
        for pattern in ('epoch_*.pth', 'iter_*.pth'):
            candidates.update(glob.glob(osp.join(folder, pattern)))
    for path in sorted(candidates, key=_step_of, reverse=True):
        if path == named:
            continue
        if is_valid_checkpoint(path):
            if named is not None or osp.isfile(pointer):
                print_log(
                    f'{pointer} names {named!r}, which is missing or not a '
                    f'readable checkpoint; resuming from {path!r}, the last '
                    'readable one',
                    logger='current',
                    level=logging.WARNING)
            return path
        print_log(
            f'skipping {path!r}: not a readable checkpoint (truncated or '
            'corrupt)',
            logger='current',
            level=logging.WARNING)
    if named is not None:
        print_log(
            f'{pointer} names {named!r}, which is missing or not a readable '
            'checkpoint, and no other checkpoint reads; training starts '
            'from scratch',
            logger='current',
            level=logging.WARNING)
    return None


def get_rng_state() -> Dict[str, Any]:
    """The states of Python's, numpy's and torch's generators, as tensors,
    numpy arrays and plain data (loadable with ``weights_only=True``)."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state['numpy']))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available() \
            and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive a kill at any moment.

    Takes every argument of :class:`mmengine.hooks.CheckpointHook` and
    changes four things for checkpoints in a local folder:

    * Atomic writes: a checkpoint is written to a hidden temporary file in
      its folder and moved into place with :func:`os.replace`, then the
      ``last_checkpoint`` pointer likewise. A kill leaves the previous
      checkpoint and a pointer to it, never a half-written file under a
      checkpoint's name.
    * With ``max_keep_ckpts``, old checkpoints are removed after the new one
      is in place (mmengine removes them before writing it).
    * Auto-resume (``resume=True`` without ``load_from``) skips a checkpoint
      that does not read and resumes from the last one that does, with a
      warning (:func:`find_last_valid_checkpoint`).
    * The random generators (Python, numpy, torch, CUDA) are saved with
      each checkpoint and restored on resume, and validation during
      training leaves them as it found them, so a resumed run draws the
      same augmentations as an uninterrupted one and ends bit-identical.

    Remote folders (``backend_args``, ``out_dir`` as a URL) fall back to
    mmengine's behaviour.

    Examples:
        >>> default_hooks = dict(
        ...     checkpoint=dict(
        ...         type='SafeCheckpointHook', interval=1, max_keep_ckpts=2))
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resumed_rng = None
        self._val_rng = None

    # -- resume --------------------------------------------------------------
    def before_run(self, runner) -> None:
        """Point auto-resume at the last checkpoint that reads."""
        if not (runner._resume and runner._load_from is None):
            return
        folders = []
        if self.out_dir is not None and '://' not in str(self.out_dir):
            folders.append(
                osp.join(self.out_dir,
                         osp.basename(runner.work_dir.rstrip(osp.sep))))
        pointer = osp.join(runner.work_dir, POINTER)
        named = None
        if osp.isfile(pointer):
            with open(pointer) as f:
                named = f.read().strip() or None
        found = find_last_valid_checkpoint(runner.work_dir, folders)
        # mmengine's auto-resume reads the pointer: make it name the file.
        if found is not None and found != named and is_main_process():
            atomic_write(pointer, found.encode())
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
        if self._is_local() and is_main_process():
            for folder in {self.out_dir, runner.work_dir}:
                for tmp in glob.glob(osp.join(folder, f'.*{_TMP_MARK}*')):
                    os.remove(tmp)

    # -- validation does not draw from the training generators ---------------
    def before_val(self, runner) -> None:
        self._val_rng = get_rng_state()

    def after_val(self, runner) -> None:
        if self._val_rng is not None:
            set_rng_state(self._val_rng)
        self._val_rng = None

    # -- saving ------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = get_rng_state()

    def _is_local(self) -> bool:
        return isinstance(getattr(self, 'file_backend', None), LocalBackend)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        filename = self.filename_tmpl.format(step)
        path = osp.join(self.out_dir, filename)
        tmp = _tmp_path(path)
        runner.save_checkpoint(
            self.out_dir,
            osp.basename(tmp),
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        self.last_ckpt = path
        runner.message_hub.update_info('last_ckpt', path)
        # Keep the bookkeeping of CheckpointHook (saved in the message hub,
        # restored on resume) and remove old files only now.
        to_remove = []
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids
                                        or self.keep_ckpt_ids[-1] != step):
            self.keep_ckpt_ids.append(step)
            while len(self.keep_ckpt_ids) > self.max_keep_ckpts:
                to_remove.append(self.keep_ckpt_ids.popleft())
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        if not is_main_process():
            return
        if osp.isfile(tmp):
            with open(tmp, 'rb+') as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        atomic_write(osp.join(runner.work_dir, POINTER), path.encode())
        for old in to_remove:
            old_path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(old_path):
                os.remove(old_path)


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first infinite or NaN loss, naming the iteration.

    The original CoOp (Dassl's ``detect_anomaly``) raises
    ``FloatingPointError('Loss is infinite or NaN!')``. This hook checks
    ``outputs['loss']``, the total loss the optimizer stepped on, after each
    iteration: one ``isfinite`` on a scalar, where mmengine's
    ``RuntimeInfoHook`` already reads the value back every iteration. The
    failing step has been applied to the weights in memory, but no
    checkpoint is written after it: the ones on disk hold finite weights.

    Examples:
        >>> default_hooks = dict(finite_loss=dict(type='FiniteLossHook'))
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        loss = torch.as_tensor(loss).detach()
        if bool(torch.isfinite(loss).all()):
            return
        try:
            per_epoch = f'/{len(runner.train_dataloader)}'
        except TypeError:
            per_epoch = ''
        losses = ', '.join(
            f'{k}={float(torch.as_tensor(v).detach().mean()):.4g}'
            for k, v in outputs.items() if 'loss' in k)
        raise FloatingPointError(
            f'Loss is infinite or NaN! ({losses}) at iteration '
            f'{runner.iter + 1} (epoch {runner.epoch + 1}, batch '
            f'{batch_idx + 1}{per_epoch}); training stopped. The checkpoints '
            f'in {runner.work_dir!r} are from before this iteration. Usual '
            'causes: a learning rate too high, fp16 weights '
            "(model.clip.precision='fp16'; try 'fp32'), or broken input.")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold the learned state of the model."""


def check_checkpoint_fits(model: torch.nn.Module, state_dict: dict,
                          path: str) -> None:
    """Refuse a checkpoint that lacks a learned tensor or has another shape.

    mmengine loads with ``strict=False`` and only warns on a shape mismatch:
    a checkpoint of another arch or ``n_ctx`` would leave the random
    initial context in place without an error.

    Args:
        model (nn.Module): The model (or its DDP wrapper).
        state_dict (dict): The checkpoint's state dict.
        path (str): The checkpoint, for the message.

    Raises:
        CheckpointMismatchError: Naming the missing keys, or every
            mismatching shape with both values.
    """
    if is_model_wrapper(model):
        model = model.module
    state_dict = {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in state_dict.items()
    }
    # Extra state (the classes of class-specific contexts) is checked by
    # the prompt learner itself, with a better message than a shape.
    expected = {
        k: v
        for k, v in model.state_dict().items()
        if isinstance(v, torch.Tensor) and not k.endswith('_extra_state')
    }
    missing = sorted(set(expected) - set(state_dict))
    if missing:
        raise CheckpointMismatchError(
            f'checkpoint {path!r} does not hold {missing} of the model of '
            f'the config (it holds {sorted(state_dict)[:8]}). Give a '
            'checkpoint of this method or the config it was trained with; '
            'convert checkpoints of the original CoOp/CoCoOp code with '
            'tools/model_converters/coop_to_mmprompt.py.')
    wrong = [
        f'{k}: {tuple(state_dict[k].shape)} in the checkpoint, '
        f'{tuple(v.shape)} in the model' for k, v in expected.items()
        if isinstance(state_dict[k], torch.Tensor)
        and state_dict[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointMismatchError(
            f'checkpoint {path!r} does not fit the model of the config: '
            f'{"; ".join(wrong)}. The config must build the prompt learner '
            'it was trained with (arch, n_ctx, ctx_init, csc and the number '
            'of classes for csc).')


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse a ``load_from`` / resume checkpoint that does not fit the
    model (:func:`check_checkpoint_fits`), before it is loaded.

    ``tools/train.py`` registers it when a checkpoint is given.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict = checkpoint.get('state_dict', checkpoint)
        path = runner._load_from or osp.join(runner.work_dir, POINTER)
        check_checkpoint_fits(runner.model, state_dict, str(path))


_NOT_REGISTERED = re.compile(
    r"(?P<name>[^\s'\"]+) is not in the (?P<scope>[\w.]+)::"
    r'(?P<registry>[\w ]+?) registry')


def _visible_names(registry) -> List[str]:
    """Names a config can use in ``registry``'s scope: its own and its
    ancestors', and ``scope.Name`` for the other scopes."""
    names = set()
    node = registry
    while node is not None:
        try:
            node.import_from_location()
        except Exception:  # an optional package missing: list the rest
            pass
        names.update(node.module_dict)
        node = node.parent
    root = registry.root

    def walk(node):
        for scope, child in node.children.items():
            if child is not registry:
                names.update(f'{scope}.{n}' for n in child.module_dict)
            walk(child)

    walk(root)
    return sorted(names)


def registry_hint(error: BaseException) -> Optional[str]:
    """Close registered names for mmengine's "X is not in the registry".

    Args:
        error (BaseException): Any exception.

    Returns:
        str | None: The error's message with up to five registered names
        close to the unknown one (its own registry and its parents',
        scoped names too), or None if ``error`` is not such an error.

    Examples:
        >>> from mmprompt.registry import MODELS
        >>> try:
        ...     MODELS.build(dict(type='CoOpHeed'))
        ... except KeyError as err:
        ...     print(registry_hint(err))
        'CoOpHeed' is not a registered model type in the 'mmprompt' scope.
        Did you mean 'CoOpHead', ...
    """
    message = error.args[0] if error.args else ''
    found = _NOT_REGISTERED.search(str(message))
    if found is None:
        return None
    import mmprompt.registry as registries
    name, kind = found.group('name'), found.group('registry')
    var, registry = next(((v, r) for v, r in vars(registries).items()
                          if getattr(r, 'name', None) == kind
                          and getattr(r, 'scope', None) == 'mmprompt'),
                         (None, None))
    if registry is None:
        return None
    names = _visible_names(registry)
    by_lower = {}
    for n in names:
        by_lower.setdefault(n.lower(), n)
    close = difflib.get_close_matches(
        name.lower(), list(by_lower), n=5, cutoff=0.6)
    # 'mmpretrain.ImageClasifier' or 'ImageClasifier' against unscoped
    # names too.
    short = {k.rsplit('.', 1)[-1]: k for k in by_lower if '.' not in k}
    close += [
        short[n] for n in difflib.get_close_matches(
            name.rsplit('.', 1)[-1].lower(), list(short), n=5, cutoff=0.6)
    ]
    close = list(dict.fromkeys(by_lower[c] for c in close))[:5]
    hint = (f' Did you mean {", ".join(repr(c) for c in close)}?'
            if close else ' No registered name is close to it.')
    prefix = str(message)[:found.start()].strip(' :\'"')
    where = f' (while building {prefix})' if prefix else ''
    return (f'{name!r} is not a registered {kind} type in the '
            f"{found.group('scope')!r} scope{where}.{hint} The {len(names)} "
            f'names a config can use are in mmprompt.registry.{var} and its '
            'parents; a class of your own needs '
            f'@{var}.register_module() in a module that the config imports '
            "with custom_imports = dict(imports=['your.module']).")
