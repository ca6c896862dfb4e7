# Copyright (c) mmprompt contributors. All rights reserved.
import io
import sys
from types import SimpleNamespace

import pytest
from mmengine.hooks import LoggerHook

from mmprompt.engine import TestProgressHook
from mmprompt.engine.hooks import test_progress_hook as progress_module


class _Terminal(io.StringIO):

    def isatty(self):
        return True


@pytest.mark.parametrize('tty', [True, False])
def test_progress_hook(tty, monkeypatch):
    stream = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, 'stdout', stream)
    logged = []
    monkeypatch.setattr(progress_module, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    logger_hook = LoggerHook(interval=10)
    runner = SimpleNamespace(test_dataloader=[None] * 20, hooks=[logger_hook])
    hook = TestProgressHook()
    hook.before_test_epoch(runner)
    for i in range(20):
        hook.after_test_iter(runner, i)
    if tty:
        # LoggerHook's per-batch lines would garble the bar: held back.
        assert logger_hook.interval > 20
    hook.after_test_epoch(runner)
    assert logger_hook.interval == 10
    if tty:
        assert '20/20' in stream.getvalue()
        assert stream.getvalue().endswith('\n') and not logged
    else:
        assert stream.getvalue() == ''
        assert logged[0] == 'Testing: 20 batches'
        assert len(logged) == 11 and '20/20 batches (100%)' in logged[-1]
