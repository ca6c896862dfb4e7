# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt.engine.distributed: the process group's end."""
import socket
import sys

import torch.distributed as dist

from mmprompt.engine import teardown_distributed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_teardown_destroys_the_process_group():
    """tools/train.py ends every run with it: a group left to the
    interpreter's exit could abort a finished run (exit 1)."""
    assert teardown_distributed() is False  # none: nothing to do
    for wait in (True, False):
        dist.init_process_group(
            'gloo',
            init_method=f'tcp://127.0.0.1:{_free_port()}',
            rank=0,
            world_size=1)
        assert dist.is_initialized()
        assert teardown_distributed(wait=wait) is True
        assert not dist.is_initialized()


def test_teardown_collects_a_released_ddp_model():
    """The DDP model holds the group: once released, teardown destroys it
    (and so joins the backend's threads) while the interpreter is alive,
    not during its finalization, where a thread that needs the GIL aborts
    the process."""
    import gc
    import weakref

    import torch
    from torch.nn.parallel import DistributedDataParallel
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{_free_port()}',
        rank=0,
        world_size=1)
    model = DistributedDataParallel(torch.nn.Linear(2, 2))
    model(torch.ones(1, 2)).sum().backward()
    holder = {'runner': model}
    holder['self'] = holder  # a cycle, as the Runner's
    alive = weakref.ref(model)
    del model, holder
    gc.disable()  # only teardown collects
    try:
        assert alive() is not None
        assert teardown_distributed() is True
        assert alive() is None
    finally:
        gc.enable()


def test_train_tears_down_after_success_and_failure(monkeypatch, tmp_path):
    """tools/train.py calls it whether the run ended or failed, waiting
    for the other ranks only after a run that ended."""
    import importlib.util
    from pathlib import Path
    train = Path(__file__).resolve().parents[2] / 'tools' / 'train.py'
    spec = importlib.util.spec_from_file_location('mmprompt_train_td', train)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []

    def teardown(wait=True):
        # the runner (and its DDP model) is released before
        frame = sys._getframe(1)
        calls.append((wait, frame.f_locals.get('runner')))

    monkeypatch.setattr(module, 'teardown_distributed', teardown)

    class Runner:
        fail = False

        @classmethod
        def from_cfg(cls, cfg):
            return cls()

        def register_hook(self, hook):
            pass

        def train(self):
            if Runner.fail:
                raise RuntimeError('boom')

    monkeypatch.setattr(module, 'Runner', Runner)
    config = tmp_path / 'cfg.py'
    config.write_text('model = dict()\n')
    argv = [str(config), '--work-dir', str(tmp_path / 'w')]
    module.main(argv)
    Runner.fail = True
    try:
        module.main(argv)
    except RuntimeError:
        pass
    assert calls == [(True, None), (False, None)]
