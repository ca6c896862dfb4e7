# Copyright (c) mmprompt contributors. All rights reserved.
"""The README's main command, end to end, on the real demo settings."""
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mmprompt.demo import DEMO_CLASSES, prepare_demo_data

REPO = Path(__file__).resolve().parents[2]


def test_demo_data_is_a_coop_split_and_is_reused(tmp_path):
    root = tmp_path / 'demo'
    old = os.umask(0o022)
    try:
        paths = prepare_demo_data(str(root), images_per_class=10)
    finally:
        os.umask(old)
    # A shared data folder: the umask's modes (the folder was mkdtemp's
    # 0700, the split file mkstemp's 0600).
    for path, mode in ((root, 0o755), (root / 'images', 0o755),
                       (paths['split_file'], 0o644), (paths['clip'], 0o644)):
        assert stat.S_IMODE(Path(path).stat().st_mode) == mode, path
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


#: The demo's table on any CPU: each sample's crops and flips are seeded by
#: (seed, epoch, index) (mmprompt.datasets.samplers), so these are also the
#: numbers of 2 processes with batch 2.
DEMO_TABLE = {
    'cocoop': (50.0, 42.9, 46.2),
    'zero-shot CLIP': (43.8, 40.5, 42.0)
}


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
    assert rows == DEMO_TABLE
    # A progress bar per run and the table; the ~1,200 lines of the five
    # runners' environments, configs and hooks go to the log file.
    lines = out.strip().splitlines()
    assert len(lines) <= 15, out
    assert sum('[' + '#' * 30 + ']' in line for line in lines) == 5, out
    log = (tmp_path / 'work' / 'demo.log').read_text()
    assert f'full log: {tmp_path / "work" / "demo.log"}' in out
    assert log.count('System environment') == 4  # 4 runners
    assert 'Epoch(train) [10][32/32]' in log.replace('  ', ' ')
    assert 'cocoop' in log.splitlines()[-4]  # the table too
    assert '\x1b[' not in log
