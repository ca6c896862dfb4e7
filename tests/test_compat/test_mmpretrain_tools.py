# Copyright (c) mmprompt contributors. All rights reserved.
"""mmprompt configs run under mmpretrain's own training script."""
import os.path as osp
import subprocess
import sys
from pathlib import Path

import mmpretrain
import pytest

from mmprompt.demo import prepare_demo_data
from mmprompt.utils import load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]
CONFIG = (
    REPO / 'configs' / 'demo' /
    'cocoop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py')


def test_mmpretrain_train_script_runs_an_mmprompt_config(tmp_path):
    script = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'train.py')
    if not osp.isfile(script):
        pytest.skip("mmpretrain's tools are not installed with the package")
    paths = prepare_demo_data(str(tmp_path / 'data'), images_per_class=10)
    work_dir = tmp_path / 'work'
    result = subprocess.run([
        sys.executable, script,
        str(CONFIG), '--work-dir',
        str(work_dir), '--no-persistent-workers', '--cfg-options',
        f"model.clip.pretrained={paths['clip']}",
        f"train_dataloader.dataset.data_root={paths['data_root']}",
        f"test_dataloader.dataset.data_root={paths['data_root']}",
        'train_cfg.max_epochs=1', 'param_scheduler.T_max=1',
        'default_hooks.checkpoint.interval=1'
    ],
                            cwd=tmp_path,
                            capture_output=True,
                            text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint_file(str(work_dir / 'epoch_1.pth'))['state_dict']
    assert 'head.prompt_learner.ctx' in state
    assert not any(key.startswith('clip.') for key in state)
