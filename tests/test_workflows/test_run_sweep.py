# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/run_sweep.py: planning, commands, skipping, resuming, failures.

The subprocesses are replaced by a fake that writes what train.py and
test.py would write; test_sweep_end_to_end.py runs the real tools.
"""
import shlex
import subprocess
from pathlib import Path

import pytest
from workflow_testing import REPO_ROOT, load_tool

run_sweep = load_tool('run_sweep.py')
COCOOP_B2N = 'cocoop_vit-base-p16_clip-openai_1xb1-ep10_base2new-16shot-{}'


def commands(out: str) -> list:
    return [
        shlex.split(line.split('  # ')[0]) for line in out.splitlines()
        if line.startswith('  ') and '.py ' in line
    ]


def option_values(cmd: list) -> list:
    return cmd[cmd.index('--cfg-options') + 1:]


def test_dry_run_base2new(capsys, tmp_path):
    assert run_sweep.main([
        'base2new', '--datasets', 'dtd', 'imagenet', '--seeds', '1', '2',
        '--work-dir',
        str(tmp_path), '--dry-run', '--cfg-options',
        'model.clip.precision=fp16'
    ]) == 0
    cmds = commands(capsys.readouterr().out)
    assert len(cmds) == 2 * 2 * 3  # datasets x seeds x (train, base, new)
    train, base, new = cmds[:3]
    config = COCOOP_B2N.format('dtd')
    work_dir = str(tmp_path / 'base2new' / 'dtd' / config / 'seed1')
    assert train[1].endswith('tools/train.py')
    assert train[2] == str(REPO_ROOT / 'configs' / 'cocoop' / f'{config}.py')
    assert train[train.index('--work-dir') + 1] == work_dir
    # The seed goes to the run and to the few-shot draws; user options last.
    assert option_values(train) == [
        'randomness.seed=1', 'train_dataloader.dataset.seed=1',
        'val_dataloader.dataset.seed=1', 'model.clip.precision=fp16'
    ]
    assert base[2] == train[2] and new[2].endswith(f'{config}_new.py')
    for test in (base, new):
        assert test[1].endswith('tools/test.py')
        assert test[3] == f'{work_dir}/epoch_10.pth'  # the same checkpoint
        assert test[test.index('--out-item') + 1] == 'metrics'
    assert base[base.index('--out') + 1] == f'{work_dir}/metrics.json'
    assert new[new.index('--out') +
               1] == str(tmp_path / 'base2new' / 'dtd' / f'{config}_new' /
                         'seed1' / 'metrics.json')
    # ImageNet has no val loader: no val seed for it.
    imagenet_train = cmds[6]
    assert 'imagenet.py' in imagenet_train[2]
    assert not any(o.startswith('val_') for o in option_values(imagenet_train))
    assert not any(Path(tmp_path).iterdir())  # a dry run writes nothing


def test_dry_run_fewshot_and_algorithms(capsys, tmp_path):
    base = ['--seeds', '1', '--work-dir', str(tmp_path), '--dry-run']
    assert run_sweep.main([
        'fewshot', '--method', 'coop', '--datasets', 'eurosat', '--shots', '1',
        '16', '--backbone', 'resnet50', 'vit-base-p32'
    ] + base) == 0
    configs = [Path(c[2]).stem for c in commands(capsys.readouterr().out)]
    assert configs[::2] == [
        'coop_resnet50_clip-openai_1xb32-ep50_1shot-eurosat',
        'coop_resnet50_clip-openai_1xb32-ep200_16shot-eurosat',
        'coop_vit-base-p32_clip-openai_1xb32-ep50_1shot-eurosat',
        'coop_vit-base-p32_clip-openai_1xb32-ep200_16shot-eurosat',
    ]
    # CoOp base-to-new exists as coop-ctxinit only: picked without asking.
    assert run_sweep.main(
        ['base2new', '--method', 'coop', '--datasets', 'dtd'] + base) == 0
    assert Path(commands(capsys.readouterr().out)[0][2]).stem.startswith(
        'coop-ctxinit_vit-base-p16')
    # Several algorithms fit DG with ViT-B/16: the method's own, or asked.
    assert run_sweep.main(['dg', '--method', 'coop'] + base) == 0
    assert Path(commands(
        capsys.readouterr().out)[0][2]).stem.startswith('coop_vit-base-p16')
    assert run_sweep.main(
        ['dg', '--method', 'coop', '--algorithm', 'coop-m4'] + base) == 0
    assert Path(commands(
        capsys.readouterr().out)[0][2]).stem.startswith('coop-m4_vit-base-p16')


def test_dry_run_cross_dataset(capsys, tmp_path):
    assert run_sweep.main([
        'cross-dataset', '--seeds', '3', '--work-dir',
        str(tmp_path), '--dry-run'
    ]) == 0
    cmds = commands(capsys.readouterr().out)
    assert len(cmds) == 1 + 1 + 10  # train, ImageNet test, 10 targets
    source = Path(cmds[0][2]).stem
    assert source.endswith('_16shot-imagenet')
    checkpoint = str(tmp_path / 'cross-dataset' / 'imagenet' / source /
                     'seed3' / 'epoch_10.pth')
    targets = [Path(c[2]).stem.split('-to-')[-1] for c in cmds[2:]]
    assert targets == list(run_sweep.XD_TARGETS)
    assert all(c[3] == checkpoint for c in cmds[1:])


def test_planning_errors(capsys, tmp_path):
    # No config: nothing runs, exit status 2, the reason is named.
    assert run_sweep.main([
        'base2new', '--datasets', 'mnist', '--work-dir',
        str(tmp_path), '--dry-run'
    ]) == 2
    assert 'no configs' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['base2new', '--shots', '4'])


class FakeTools:
    """Stands in for train.py / test.py: writes checkpoints and metrics."""

    def __init__(self, fail_tests_of: str = '') -> None:
        self.calls = []
        self.fail_tests_of = fail_tests_of

    def __call__(self, cmd, stdout=None, **kwargs):
        self.calls.append(cmd)
        work_dir = Path(cmd[cmd.index('--work-dir') + 1])
        work_dir.mkdir(parents=True, exist_ok=True)
        if cmd[1].endswith('train.py'):
            (work_dir / 'epoch_10.pth').write_bytes(b'')
            (work_dir / 'last_checkpoint').write_text('epoch_10.pth')
        elif self.fail_tests_of and self.fail_tests_of in cmd[2]:
            stdout.write('Traceback: something broke\n')
            return subprocess.CompletedProcess(cmd, 1)
        else:
            out = Path(cmd[cmd.index('--out') + 1])
            out.write_text('{"accuracy/top1": 50.0}')
        return subprocess.CompletedProcess(cmd, 0)


def test_skip_resume_and_failures(monkeypatch, capsys, tmp_path):
    argv = [
        'base2new', '--datasets', 'dtd', 'eurosat', '--seeds', '1', '2',
        '--work-dir',
        str(tmp_path)
    ]
    root = tmp_path / 'base2new'
    dtd = root / 'dtd' / COCOOP_B2N.format('dtd')
    # seed 1 of dtd: training was interrupted after a checkpoint.
    (dtd / 'seed1').mkdir(parents=True)
    (dtd / 'seed1' / 'last_checkpoint').write_text('epoch_5.pth')
    # seed 2 of dtd: trained and base-tested; the new test is missing.
    (dtd / 'seed2').mkdir(parents=True)
    (dtd / 'seed2' / 'epoch_10.pth').write_bytes(b'')
    (dtd / 'seed2' / 'metrics.json').write_text('{"accuracy/top1": 1}')

    fake = FakeTools(fail_tests_of='eurosat_new')
    monkeypatch.setattr(run_sweep.subprocess, 'run', fake)
    assert run_sweep.main(argv) == 1  # eurosat's new tests failed
    out = capsys.readouterr().out
    trains = [c for c in fake.calls if c[1].endswith('train.py')]
    # dtd seed 1 resumed, dtd seed 2 not retrained, eurosat from scratch.
    assert [('--resume' in c, Path(c[c.index('--work-dir') + 1]).name,
             Path(c[2]).stem.split('-')[-1])
            for c in trains] == [(True, 'seed1', 'dtd'),
                                 (False, 'seed1', 'eurosat'),
                                 (False, 'seed2', 'eurosat')]
    tests = [Path(c[2]).stem for c in fake.calls if c[1].endswith('test.py')]
    assert tests.count(COCOOP_B2N.format('dtd')) == 1  # seed 2's is done
    assert len(tests) == 2 + 1 + 4
    # The failure is reported with its log and the sweep went on.
    assert out.count('FAILED') == 2 and 'something broke' in out
    assert '2 failed' in out
    assert (dtd.parent / f"{COCOOP_B2N.format('dtd')}_new" / 'seed2' /
            'metrics.json').is_file()

    # Run again: only the failed tests are left, and now they pass.
    fake = FakeTools()
    monkeypatch.setattr(run_sweep.subprocess, 'run', fake)
    assert run_sweep.main(argv) == 0
    assert [Path(c[2]).stem
            for c in fake.calls] == [COCOOP_B2N.format('eurosat') + '_new'] * 2
    assert '2 jobs were done already' in capsys.readouterr().out


def test_dg_reuses_cross_dataset_training(capsys, tmp_path):
    source = 'cocoop_vit-base-p16_clip-openai_1xb1-ep10_16shot-imagenet'
    trained = tmp_path / 'cross-dataset' / 'imagenet' / source / 'seed1'
    trained.mkdir(parents=True)
    (trained / 'epoch_10.pth').write_bytes(b'')
    assert run_sweep.main(
        ['dg', '--seeds', '1', '--work-dir',
         str(tmp_path), '--dry-run']) == 0
    cmds = commands(capsys.readouterr().out)
    assert len(cmds) == 1 + 4  # no training: ImageNet and the 4 variants
    assert all(c[1].endswith('test.py') for c in cmds)
    assert all(c[3] == str(trained / 'epoch_10.pth') for c in cmds)
    # The results still go to the dg folders.
    assert cmds[0][cmds[0].index('--out') +
                   1] == str(tmp_path / 'dg' / 'imagenet' / source / 'seed1' /
                             'metrics.json')
