# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/misc/ddp_stress.py with a stand-in for tools/dist_train.sh (the
real runs are the reviewer's: ``python tools/misc/ddp_stress.py``)."""
import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'misc' / 'ddp_stress.py'

# Exits 0, then prints gloo's abort and exits 1, then exits 0 again; it
# records its arguments and the port it was given.
FAKE = '''#!/usr/bin/env bash
n=$(cat {count} 2>/dev/null || echo 0); echo $((n + 1)) > {count}
echo "$PORT $*" >> {calls}
if [ "$n" = 1 ]; then
    echo "terminate called without an active exception"; exit 1
fi
'''


def load_tool():
    spec = importlib.util.spec_from_file_location('mmprompt_ddp_stress', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reports_every_exit_code_and_aborts(tmp_path, capsys, monkeypatch):
    tool = load_tool()
    fake = tmp_path / 'dist_train.sh'
    fake.write_text(
        FAKE.format(count=tmp_path / 'count', calls=tmp_path / 'calls'))
    monkeypatch.setattr(tool, 'DIST_TRAIN', str(fake))
    config = tmp_path / 'cfg.py'
    config.write_text('')
    status = tool.main([
        '--runs', '3', '--config',
        str(config), '--work-dir',
        str(tmp_path / 'runs'), '--cfg-options', 'a=1'
    ])
    assert status == 1
    out = capsys.readouterr().out
    assert 'run   1/3: exit 0' in out
    assert 'run   2/3: exit 1 (terminate called)' in out
    assert '2 of 3 runs exited 0 without an abort; exit codes: 0: 2, 1: 1' \
        in out
    calls = (tmp_path / 'calls').read_text().splitlines()
    assert len(calls) == 3 and len({c.split()[0] for c in calls}) == 3
    assert calls[0].split()[1:] == [
        str(config), '2', '--work-dir',
        str(tmp_path / 'runs' / 'run000'), '--cfg-options', 'a=1'
    ]
    assert (tmp_path / 'runs' / 'run001' / 'stdout.log').is_file()


def test_argument_errors(tmp_path, capsys):
    tool = load_tool()
    for argv in (['--runs', '0'], ['--config', str(tmp_path / 'no.py')]):
        try:
            tool.parse_args(argv)
        except SystemExit:
            pass
        else:
            raise AssertionError(argv)
    assert 'no such file' in capsys.readouterr().err
