# Copyright (c) mmprompt contributors. All rights reserved.
"""The README's main command, end to end, on the real demo settings."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmprompt.demo import DEMO_CLASSES, prepare_demo_data

REPO = Path(__file__).resolve().parents[2]


def test_demo_data_is_a_coop_split_and_is_reused(tmp_path):
    root = tmp_path / 'demo'
    paths = prepare_demo_data(str(root), images_per_class=10)
    split = json.loads(Path(paths['split_file']).read_text())
    assert {len(split[k])
            for k in ('train', 'val', 'test')} == {
                5 * len(DEMO_CLASSES), 2 * len(DEMO_CLASSES),
                3 * len(DEMO_CLASSES)
            }
    impath, label, name = split['train'][0]
    assert (root / 'images' / impath).is_file()
    assert DEMO_CLASSES[label] == name
    stamp = Path(paths['clip']).stat().st_mtime_ns
    assert prepare_demo_data(str(root)) == paths  # reused, not rewritten
    assert Path(paths['clip']).stat().st_mtime_ns == stamp


def test_demo_never_writes_into_a_foreign_folder(tmp_path):
    (tmp_path / 'mine.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='does not overwrite'):
        prepare_demo_data(str(tmp_path))
    assert (tmp_path / 'mine.txt').read_text() == 'keep me'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['mine.txt']


def test_readme_demo_learns(tmp_path):
    result = subprocess.run([
        sys.executable, 'demo/base2new_demo.py', '--data-root',
        str(tmp_path / 'data'), '--work-dir',
        str(tmp_path / 'work')
    ],
                            cwd=REPO,
                            capture_output=True,
                            text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    rows = {
        m.group(1).strip(): tuple(map(float, m.group(2, 3, 4)))
        for m in re.finditer(
            r'^\s+(cocoop|zero-shot CLIP)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)',
            out, re.M)
    }
    assert set(rows) == {'cocoop', 'zero-shot CLIP'}, out[-2000:]
    chance = float(re.search(r'chance ([\d.]+)%', out).group(1))
    base, new, h = rows['cocoop']
    assert base > 2 * chance  # a real learning run
    assert base > rows['zero-shot CLIP'][0]  # prompt learning helped
    assert h == pytest.approx(2 * base * new / (base + new), abs=0.06)
    assert (tmp_path / 'work' / 'epoch_10.pth').stat().st_size < 100_000
