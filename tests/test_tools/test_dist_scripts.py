# Copyright (c) mmprompt contributors. All rights reserved.
"""The launch scripts, with stand-ins for torchrun and srun that record the
command line they were given."""
import os
import subprocess

import pytest
from tools_testing import REPO_ROOT, TOOLS

RECORDER = '''#!/usr/bin/env bash
{{ echo "PYTHONPATH=$PYTHONPATH"; printf '%s\\n' "$@"; }} > {out}
'''


@pytest.fixture
def launch(tmp_path):
    """Run a script of tools/ with torchrun and srun recorded."""
    out = tmp_path / 'argv.txt'
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name in ('torchrun', 'srun'):
        (bin_dir / name).write_text(RECORDER.format(out=out))
        (bin_dir / name).chmod(0o755)

    def run(script, *args, **env):
        full_env = dict(os.environ, **env)
        full_env['PATH'] = f'{bin_dir}{os.pathsep}{full_env["PATH"]}'
        proc = subprocess.run(
            ['bash', str(TOOLS / script)] + list(args),
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True)
        argv = out.read_text().splitlines() if out.exists() else None
        return proc, argv

    return run


def test_dist_train(launch):
    proc, argv = launch(
        'dist_train.sh',
        'cfg.py',
        '4',
        '--amp',
        '--cfg-options',
        'a=1 2',
        NNODES='2',
        NODE_RANK='1',
        PORT='1234',
        MASTER_ADDR='10.0.0.1')
    assert proc.returncode == 0, proc.stdout
    assert argv[0].startswith(f'PYTHONPATH={TOOLS}/..')
    assert argv[1:] == [
        '--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.1',
        '--master_port=1234', '--nproc_per_node=4',
        str(TOOLS / 'train.py'), 'cfg.py', '--launcher', 'pytorch', '--amp',
        '--cfg-options', 'a=1 2'
    ]
    assert os.path.realpath(
        argv[0].split('=')[1].split(':')[0]) == str(REPO_ROOT)


def test_dist_test_defaults(launch):
    proc, argv = launch('dist_test.sh', 'cfg.py', 'ckpt.pth', '2', '--out',
                        'p.json')
    assert proc.returncode == 0, proc.stdout
    assert argv[1:] == [
        '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
        '--master_port=29500', '--nproc_per_node=2',
        str(TOOLS / 'test.py'), 'cfg.py', 'ckpt.pth', '--launcher', 'pytorch',
        '--out', 'p.json'
    ]


def test_slurm_scripts(launch):
    proc, argv = launch(
        'slurm_train.sh',
        'part',
        'job',
        'cfg.py',
        'work',
        '--amp',
        GPUS='16',
        SRUN_ARGS='--quotatype=auto --exclusive')
    assert proc.returncode == 0, proc.stdout
    assert argv[1:] == [
        '-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--exclusive', 'python', '-u',
        str(TOOLS / 'train.py'), 'cfg.py', '--work-dir=work',
        '--launcher=slurm', '--amp'
    ]
    proc, argv = launch(
        'slurm_test.sh', 'part', 'job', 'cfg.py', 'c.pth', GPUS='2')
    assert proc.returncode == 0, proc.stdout
    assert argv[1:] == [
        '-p', 'part', '--job-name=job', '--gres=gpu:2', '--ntasks=2',
        '--ntasks-per-node=2', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        'python', '-u',
        str(TOOLS / 'test.py'), 'cfg.py', 'c.pth', '--launcher=slurm'
    ]


@pytest.mark.parametrize(
    'script',
    ['dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh'])
def test_usage_without_arguments(launch, script):
    proc, argv = launch(script, 'only-one-arg')
    assert proc.returncode == 2
    assert 'usage:' in proc.stdout
    assert argv is None
