# Copyright (c) mmprompt contributors. All rights reserved.
"""The golden gate: without the original's outputs a test skips in a user's
clone and fails under ``MMPROMPT_REQUIRE_GOLDEN=1`` (CI).

Each case runs pytest in a subprocess on two probe tests, one through the
suite's ``golden_dir`` fixture (``tests/conftest.py``), one through
``golden_path``, as the golden tests use them.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from golden_testing import GOLDEN_ENV, REQUIRE_ENV, golden_required

TESTS = Path(__file__).resolve().parent

PROBE_CONFTEST = f'''\
import importlib.util

spec = importlib.util.spec_from_file_location(
    'mmprompt_tests_conftest', {str(TESTS / 'conftest.py')!r})
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
golden_dir = suite.golden_dir  # the fixture itself, not its autouse peers
'''

PROBE_TESTS = '''\
from golden_testing import golden_path


def test_fixture(golden_dir):
    assert (golden_dir / 'protocol').is_dir()


def test_helper():
    assert golden_path('protocol', 'lr_per_epoch.json').is_file()
'''


def run_probe(tmp_path: Path, golden: Path, require: str = None):
    probe = tmp_path / 'probe'
    probe.mkdir(exist_ok=True)
    (probe / 'conftest.py').write_text(PROBE_CONFTEST)
    (probe / 'test_probe.py').write_text(PROBE_TESTS)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ENV}
    env[GOLDEN_ENV] = str(golden)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(TESTS)] + [p for p in [env.get('PYTHONPATH')] if p])
    env.pop('PYTEST_ADDOPTS', None)
    if require is not None:
        env[REQUIRE_ENV] = require
    return subprocess.run([
        sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-rs',
        str(probe / 'test_probe.py')
    ],
                          cwd=probe,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_missing_golden_skips_with_the_path(tmp_path):
    missing = tmp_path / 'no-golden-here'
    result = run_probe(tmp_path, missing)
    out = result.stdout
    assert result.returncode == 0, out[-3000:]
    assert '2 skipped' in out, out[-3000:]
    assert f'golden folder {missing} not found' in out, out[-3000:]


@pytest.mark.parametrize('require', ['1', 'true'])
def test_missing_golden_fails_when_required(tmp_path, require):
    missing = tmp_path / 'no-golden-here'
    result = run_probe(tmp_path, missing, require)
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    # a fixture that fails is reported as an error of the test's set-up
    assert '1 failed, 1 error' in out and 'skipped' not in out, out[-3000:]
    assert f'golden folder {missing} not found' in out, out[-3000:]
    assert REQUIRE_ENV in out, out[-3000:]


def test_missing_golden_file_fails_when_required(tmp_path):
    golden = tmp_path / 'golden'
    (golden / 'protocol').mkdir(parents=True)
    result = run_probe(tmp_path, golden, '1')
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert '1 failed, 1 passed' in out, out[-3000:]
    assert f"{golden / 'protocol' / 'lr_per_epoch.json'} not found" in out


def test_present_golden_passes_when_required(tmp_path):
    golden = tmp_path / 'golden'
    (golden / 'protocol').mkdir(parents=True)
    (golden / 'protocol' / 'lr_per_epoch.json').write_text('{}')
    result = run_probe(tmp_path, golden, '1')
    assert result.returncode == 0, result.stdout[-3000:]
    assert '2 passed' in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize('value,required', [(None, False), ('', False),
                                            ('0', False), ('no', False),
                                            ('1', True), ('yes', True)])
def test_golden_required(monkeypatch, value, required):
    if value is None:
        monkeypatch.delenv(REQUIRE_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_ENV, value)
    assert golden_required() is required
