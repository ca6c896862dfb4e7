# Copyright (c) mmprompt contributors. All rights reserved.
"""A quiet console for the demo: the full log to a file, progress bars and
warnings on the screen.

Each mmengine ``Runner`` logs its environment, config and hooks (some 300
lines) before it starts; the demo runs five of them. :func:`quiet_console`
sends everything written to ``sys.stdout`` (where mmengine's loggers write)
to a log file and lets only warnings and errors through to the screen;
:class:`ProgressHook` draws one progress bar per training or test run.
"""
import contextlib
import io
import os
import os.path as osp
import re
import sys
import time
from typing import IO, Iterator, Optional

from mmengine.hooks import Hook

__all__ = ['LogTee', 'ProgressHook', 'quiet_console']

_ANSI = re.compile(r'\x1b\[[0-9;]*m')
_LOUD = re.compile(r' - (WARNING|ERROR|CRITICAL) - ')
#: Warnings of mmengine about its own internals, which a user cannot act
#: on (CheckpointHook builds a FileClient whatever its arguments): kept in
#: the log, not shown.
_INTERNAL = ('"FileClient" will be deprecated',
             '"HardDiskBackend" is the alias of "LocalBackend"')


class LogTee(io.TextIOBase):
    """A text stream that writes everything to ``log`` (colours removed)
    and the lines of warnings and errors also to ``console`` (but for
    mmengine's deprecation notices about its own internals).

    Args:
        log (IO[str]): The log file.
        console (IO[str]): The screen.

    Examples:
        >>> import io
        >>> log, screen = io.StringIO(), io.StringIO()
        >>> tee = LogTee(log, screen)
        >>> _ = tee.write('12/06 10:00:00 - mmengine - INFO - hello\\n')
        >>> _ = tee.write('12/06 10:00:01 - mmengine - WARNING - careful\\n')
        >>> screen.getvalue()
        '12/06 10:00:01 - mmengine - WARNING - careful\\n'
        >>> len(log.getvalue().splitlines())
        2
    """

    def __init__(self, log: IO[str], console: IO[str]) -> None:
        super().__init__()
        self.log = log
        self.console = console
        self._line = ''

    def write(self, text: str) -> int:
        plain = _ANSI.sub('', text)
        self.log.write(plain)
        self._line += plain
        *lines, self._line = self._line.split('\n')
        for line in lines:
            if _LOUD.search(line) and not any(n in line for n in _INTERNAL):
                self.console.write(line + '\n')
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.console.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def quiet_console(log_file: str, mode: str = 'a') -> Iterator[IO[str]]:
    """Send ``sys.stdout`` to ``log_file``, warnings and errors also to the
    screen.

    mmengine's loggers created inside (a ``Runner``'s) write to the
    redirected stream; so does ``print``.

    Args:
        log_file (str): The log file; its folder is created.
        mode (str): ``'a'`` appends to the file, ``'w'`` replaces it.
            Defaults to ``'a'``.

    Yields:
        IO[str]: The screen (the ``sys.stdout`` of before), for progress
        bars and results.
    """
    folder = osp.dirname(osp.abspath(log_file))
    os.makedirs(folder, exist_ok=True)
    screen = sys.stdout
    with open(log_file, mode, encoding='utf-8') as log:
        tee = LogTee(log, screen)
        with contextlib.redirect_stdout(tee):
            yield screen
        tee.flush()


class ProgressHook(Hook):
    """A one-line progress bar of a ``Runner``'s training and test.

    On a terminal the bar is redrawn in place; otherwise (a file, a pipe)
    one line is written when the run ends.

    Args:
        stream (IO[str]): Where the bar goes (the screen).
        train_label (str, optional): What the training does, e.g.
            ``'train cocoop'``; None draws no bar for training.
        test_label (str, optional): The same for the test.
        width (int): Characters of the bar. Defaults to 30.

    Examples:
        >>> import io
        >>> from types import SimpleNamespace
        >>> screen = io.StringIO()
        >>> hook = ProgressHook(screen, test_label='test', width=4)
        >>> runner = SimpleNamespace(test_loop=SimpleNamespace(
        ...     dataloader=[0, 1]))
        >>> hook.before_test(runner)
        >>> hook.after_test_iter(runner, 0)
        >>> hook.after_test(runner)
        >>> screen.getvalue().startswith('  test')
        True
        >>> '[####] 2/2' in screen.getvalue()
        True
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 stream: IO[str],
                 train_label: Optional[str] = None,
                 test_label: Optional[str] = None,
                 width: int = 30) -> None:
        self.stream = stream
        self.train_label = train_label
        self.test_label = test_label
        self.label: Optional[str] = None
        self.width = width
        self._total = 0
        self._offset = 0
        self._start = 0.0
        self._tty = bool(getattr(stream, 'isatty', lambda: False)())

    def _begin(self, label: Optional[str], total: int) -> None:
        self.label = label
        self._total, self._start = max(int(total), 1), time.time()
        self._draw(0)

    def _draw(self, done: int, final: bool = False) -> None:
        if self.label is None or not (self._tty or final):
            return
        filled = self.width * done // self._total
        bar = '#' * filled + '.' * (self.width - filled)
        seconds = time.time() - self._start
        line = (f'  {self.label:<28} [{bar}] {done}/{self._total} '
                f'{seconds:.0f} s')
        end = '\n' if final else ''
        self.stream.write(('\r' if self._tty else '') + line + end)
        self.stream.flush()

    def before_train(self, runner) -> None:
        self._offset = runner.iter
        self._begin(self.train_label, runner.max_iters - runner.iter)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        self._draw(runner.iter + 1 - self._offset)

    def after_train(self, runner) -> None:
        self._draw(self._total, final=True)

    def before_test(self, runner) -> None:
        self._begin(self.test_label, len(runner.test_loop.dataloader))

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs=None) -> None:
        self._draw(batch_idx + 1)

    def after_test(self, runner) -> None:
        self._draw(self._total, final=True)
