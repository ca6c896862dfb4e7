# Copyright (c) mmprompt contributors. All rights reserved.
"""``demo/base2new_demo.py --method maple|promptsrc``: the deep prompt
methods trained and tested on the demo, printed beside CoCoOp's row (CoCoOp
trained in the same run). Two epochs here, to keep the test short; the
full demo (10 epochs) prints, for PromptSRC, 50.7 / 57.1 / 53.7 beside
CoCoOp's 50.0 / 42.9 / 46.2 (configs/promptsrc/README.md)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmprompt.utils import load_checkpoint_file

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('method', ['maple', 'promptsrc'])
def test_deep_prompt_methods_beside_cocoop(tmp_path, method):
    work = tmp_path / 'work'
    result = subprocess.run([
        sys.executable, 'demo/base2new_demo.py', '--method', method,
        '--epochs', '2', '--data-root',
        str(tmp_path / 'data'), '--work-dir',
        str(work)
    ],
                            cwd=REPO,
                            capture_output=True,
                            text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    rows = {
        m.group(1).strip(): tuple(map(float, m.group(2, 3, 4)))
        for m in re.finditer(
            r'^\s+(maple|promptsrc|cocoop|zero-shot CLIP)\s+([\d.]+)\s+'
            r'([\d.]+)\s+([\d.]+)', out, re.M)
    }
    assert list(rows) == [method, 'cocoop', 'zero-shot CLIP'], out[-2000:]
    for base, new, h in rows.values():
        assert 0 <= base <= 100 and 0 <= new <= 100
        # H of the unrounded accuracies, printed to 0.1
        assert h == pytest.approx(2 * base * new / (base + new), abs=0.1)
    # The method's own checkpoint, CoCoOp's in a sub-folder.
    assert f'checkpoint: {work / "epoch_2.pth"}' in out
    assert (work / 'cocoop' / 'epoch_2.pth').is_file()
    state = load_checkpoint_file(str(work / 'epoch_2.pth'))
    learned = state['state_dict']
    if method == 'promptsrc':
        assert 'head.prompt_learner.vision_deep.0' in learned
        assert state['gaussian_prompt_aggregation']['epochs'] == [1, 2]
    else:
        assert 'head.prompt_learner.compound_prompts_text.0' in learned
    # 2 trainings and 6 tests, a progress bar each.
    assert sum('[' + '#' * 30 + ']' in line
               for line in out.splitlines()) == 8, out
