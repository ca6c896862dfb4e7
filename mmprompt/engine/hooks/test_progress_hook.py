# Copyright (c) mmprompt contributors. All rights reserved.
"""The hook that shows how far the test loop is."""
import sys
import time

from mmengine.dist import is_main_process
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from mmprompt.registry import HOOKS

__all__ = ['TestProgressHook']


@HOOKS.register_module()
class TestProgressHook(Hook):
    """Show how far the test loop is.

    On a terminal, a progress bar; LoggerHook's per-batch test lines are
    held back meanwhile (the bar shows the same count and ETA, and lines
    printed into a bar redrawn with ``\\r`` garble both). Otherwise (a log
    file, a batch job) one log line per tenth of the batches. Only the main
    process reports. ``tools/test.py`` registers it unless
    ``--no-progress`` is given.

    Examples:
        >>> custom_hooks = [dict(type='TestProgressHook')]
    """

    # Not a test class, whatever pytest guesses from the name.
    __test__ = False

    # Before LoggerHook (BELOW_NORMAL), so the bar's line is finished before
    # the metrics are logged.
    priority = 'NORMAL'

    def __init__(self) -> None:
        self._bar = None
        self._total = 0
        self._next_report = 0
        self._start = 0.0
        self._held_back = []

    def before_test_epoch(self, runner) -> None:
        """Start the bar, or log the number of batches."""
        if not is_main_process():
            return
        self._total = len(runner.test_dataloader)
        self._start = time.time()
        if sys.stdout.isatty():
            for hook in runner.hooks:
                if isinstance(hook, LoggerHook):
                    self._held_back.append((hook, hook.interval))
                    hook.interval = sys.maxsize
            self._bar = ProgressBar(self._total, file=sys.stdout)
        else:
            self._next_report = max(1, self._total // 10)
            print_log(f'Testing: {self._total} batches', logger='current')

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        """Advance the bar, or log every tenth of the batches."""
        if not is_main_process():
            return
        if self._bar is not None:
            self._bar.update()
            return
        done = batch_idx + 1
        if done >= self._next_report or done == self._total:
            elapsed = time.time() - self._start
            eta = elapsed / done * (self._total - done)
            print_log(
                f'Testing: {done}/{self._total} batches '
                f'({100 * done // max(self._total, 1)}%), elapsed '
                f'{elapsed:.0f}s, ETA {eta:.0f}s',
                logger='current')
            self._next_report = done + max(1, self._total // 10)

    def after_test_epoch(self, runner, metrics=None) -> None:
        """Finish the bar's line and give LoggerHook its interval back."""
        for hook, interval in self._held_back:
            hook.interval = interval
        self._held_back = []
        if self._bar is not None:
            sys.stdout.write('\n')
            sys.stdout.flush()
            self._bar = None
