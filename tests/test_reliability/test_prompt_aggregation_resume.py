# Copyright (c) mmprompt contributors. All rights reserved.
"""Gaussian prompt aggregation survives a kill: ``tools/train.py`` killed
(SIGKILL) in the middle of an epoch and resumed with ``--resume`` ends with
the aggregate of a run never interrupted."""
import signal

import torch
from reliability_testing import (finish, kill_after_line, learned,
                                 make_image_tree, start_train, write_config)

from mmprompt.utils import load_checkpoint_file

HOOK = ("custom_hooks = [dict(type='ClassNamesHook'), dict(type="
        "'GaussianPromptAggregationHook', mean=3, std=1)]")


def test_killed_run_resumes_to_the_same_aggregate(tmp_path):
    data = make_image_tree(tmp_path / 'data')
    config = write_config(tmp_path / 'cocoop_gpa.py', data, epochs=4)
    text = config.read_text()
    old = ("custom_hooks = [dict(type='ClassNamesHook'), "
           "dict(type='KillDuringSaveHook')]")
    assert old in text
    config.write_text(text.replace(old, HOOK))
    ref, run = tmp_path / 'uninterrupted', tmp_path / 'interrupted'
    reference = start_train([str(config), '--work-dir', str(ref)], tmp_path)
    first = start_train([str(config), '--work-dir', str(run)], tmp_path)
    log = kill_after_line(first, 'Epoch(train) [3][2/3]')
    assert first.returncode == -signal.SIGKILL, log[-3000:]
    assert not (run / 'epoch_3.pth').exists()
    second = start_train([str(config), '--work-dir',
                          str(run), '--resume'], tmp_path)
    log = finish(second)
    assert second.returncode == 0, log[-4000:]
    assert 'Epoch(train) [3][1/3]' in log and 'Epoch(train) [2]' not in log
    assert 'Gaussian prompt aggregation: the learnable tensors now hold' \
        in log, log[-3000:]
    ref_log = finish(reference)
    assert reference.returncode == 0, ref_log[-4000:]
    a, b = learned(ref / 'epoch_4.pth'), learned(run / 'epoch_4.pth')
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # The checkpoint holds the aggregate: the epoch-3 sum plus epoch 4's
    # share, not the prompts of epoch 4.
    state = load_checkpoint_file(str(ref / 'epoch_4.pth'))
    final = state['gaussian_prompt_aggregation']
    assert final['epochs'] == [1, 2, 3, 4]
    ctx = 'head.prompt_learner.ctx'
    assert torch.equal(final['sum'][ctx], a[ctx])
    third = load_checkpoint_file(str(ref / 'epoch_3.pth'))
    assert not torch.equal(third['state_dict'][ctx], a[ctx])
