# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/run_sweep.py: planning, options, skipping, resuming, failures.

The subprocesses are replaced by a fake that writes what train.py and
test.py would write; test_sweep_end_to_end.py runs the real tools.
"""
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from mmengine.config import Config
from workflow_testing import REPO_ROOT, load_tool

run_sweep = load_tool('run_sweep.py')
COCOOP_B2N = 'cocoop_vit-base-p16_clip-openai_1xb1-ep10_base2new-16shot-{}'
COCOOP_PETS = (
    REPO_ROOT / 'configs' / 'cocoop' /
    'cocoop_vit-base-p16_clip-openai_1xb1-ep10_base2new-16shot-oxford-pets.py')


def commands(out: str) -> list:
    return [
        shlex.split(line.split('  # ')[0]) for line in out.splitlines()
        if line.startswith('  ') and '.py ' in line
    ]


def options(cmd: list) -> dict:
    """The --cfg-options of a command as a dict (the last value wins)."""
    values = cmd[cmd.index('--cfg-options') + 1:]
    return dict(v.split('=', 1) for v in values)


def work_dir(cmd: list) -> Path:
    return Path(cmd[cmd.index('--work-dir') + 1])


def test_dry_run_base2new(capsys, tmp_path):
    assert run_sweep.main([
        'base2new', '--datasets', 'dtd', 'imagenet', '--seeds', '1', '2',
        '--work-dir',
        str(tmp_path), '--dry-run', '--cfg-options',
        'model.clip.precision=fp16', 'train_cfg.max_epochs=3'
    ]) == 0
    cmds = commands(capsys.readouterr().out)
    assert len(cmds) == 2 * 2 * 3  # datasets x seeds x (train, base, new)
    train, base, new = cmds[:3]
    # Every run starts from the protocol's model-zoo config; the settings
    # come as options, not from a config per dataset.
    assert {c[2] for c in cmds} == {str(COCOOP_PETS)}
    assert train[1].endswith('tools/train.py')
    # The run name spells the settings, with the user's epochs (3).
    name = 'cocoop_vit-base-p16_clip-openai_1xb1-ep3_base2new-16shot-dtd'
    folder = tmp_path / 'base2new' / 'dtd' / name / 'seed1'
    assert work_dir(train) == folder
    values = train[train.index('--cfg-options') + 1:]
    # The seed goes to the run and to the few-shot draws, first; the
    # user's options last, overriding the sweep's.
    assert values[:3] == [
        'randomness.seed=1', 'train_dataloader.dataset.seed=1',
        'val_dataloader.dataset.seed=1'
    ]
    assert values[-2:] == [
        'model.clip.precision=fp16', 'train_cfg.max_epochs=3'
    ]
    opts = options(train)
    for loader in ('train', 'val', 'test'):
        assert opts[f'{loader}_dataloader.dataset.type'] == \
            'DescribableTextures'
        assert opts[f'{loader}_dataloader.dataset.data_root'] == 'data/dtd'
        assert opts[f'{loader}_dataloader.dataset.subsample_classes'] == \
            'base'
    assert opts['train_dataloader.dataset.num_shots'] == '16'
    assert opts['param_scheduler.T_max'] == '10'  # CoCoOp: 10 epochs
    assert opts['train_dataloader.drop_last'] == 'True'
    assert 'model.clip.arch' not in opts  # the config's own backbone
    # Both tests evaluate the same checkpoint; the new classes in a folder
    # of their own.
    for test in (base, new):
        assert test[1].endswith('tools/test.py')
        assert test[3] == f'{folder}/epoch_3.pth'
        assert test[test.index('--out-item') + 1] == 'metrics'
    assert base[base.index('--out') + 1] == f'{folder}/metrics.json'
    assert options(base)['test_dataloader.dataset.subsample_classes'] == \
        'base'
    assert work_dir(new) == folder.parent.parent / f'{name}_new' / 'seed1'
    assert options(new)['test_dataloader.dataset.subsample_classes'] == 'new'
    # ImageNet has no val split: no val seed, no val loop.
    imagenet = options(cmds[6])
    assert 'val_dataloader.dataset.seed' not in imagenet
    assert imagenet['val_dataloader'] == imagenet['val_cfg'] == 'None'
    assert imagenet['train_dataloader.dataset.type'] == 'ImageNet'
    assert not any(Path(tmp_path).iterdir())  # a dry run writes nothing


def test_dry_run_base2new_kgcoop_teacher_templates(capsys, tmp_path):
    """KgCoOp's teacher prompt follows the dataset trained on (its name,
    read in KgCoOp's table); its schedule is 100 epochs everywhere."""
    argv = ['base2new', '--method', 'kgcoop', '--datasets', 'dtd', 'eurosat']
    assert run_sweep.main(
        argv + ['--seeds', '1', '--work-dir',
                str(tmp_path), '--dry-run']) == 0
    cmds = commands(capsys.readouterr().out)
    assert len(cmds) == 2 * 3
    dtd, eurosat = options(cmds[0]), options(cmds[3])
    assert dtd['model.head.templates'] == 'DescribableTextures'
    assert eurosat['model.head.templates'] == 'EuroSAT'
    assert dtd['param_scheduler.T_max'] == '100'
    assert eurosat['train_dataloader.drop_last'] == 'False'  # 80 < 128
    assert work_dir(cmds[0]).parent.name == (
        'kgcoop_vit-base-p16_clip-openai_1xb128-ep100_base2new-16shot-dtd')
    # the other methods have no teacher template to set
    assert run_sweep.main([
        'base2new', '--method', 'coop', '--datasets', 'dtd', '--seeds', '1',
        '--work-dir',
        str(tmp_path), '--dry-run'
    ]) == 0
    coop = commands(capsys.readouterr().out)
    assert 'model.head.templates' not in options(coop[0])


def test_dry_run_prograd_shots_lambda_and_teacher(capsys, tmp_path):
    """ProGrad's base-to-new is its own table's (RN50, 4 shots, 100
    epochs); --shots 16 gives the comparison tables' setting; its few-shot
    runs take CoOp's epochs and λ 0.8 on Flowers, DTD and EuroSAT at 8 and
    16 shots; the teacher's template follows the dataset."""
    base = ['--seeds', '1', '--work-dir', str(tmp_path), '--dry-run']
    assert run_sweep.main(
        ['base2new', '--method', 'prograd', '--datasets', 'eurosat'] +
        base) == 0
    cmds = commands(capsys.readouterr().out)
    eurosat = options(cmds[0])
    assert work_dir(cmds[0]).parent.name == (
        'prograd_resnet50_clip-openai_1xb32-ep100_base2new-4shot-eurosat')
    assert eurosat['train_dataloader.dataset.num_shots'] == '4'
    assert eurosat['train_dataloader.drop_last'] == 'False'  # 20 < 32
    assert eurosat['model.head.templates'] == 'EuroSAT'
    assert 'optim_wrapper.lambda_' not in eurosat
    assert run_sweep.main([
        'base2new', '--method', 'prograd', '--datasets', 'dtd', '--shots',
        '16', '--backbone', 'vit-base-p16'
    ] + base) == 0
    dtd = options(commands(capsys.readouterr().out)[0])
    assert dtd['train_dataloader.dataset.num_shots'] == '16'
    assert dtd['model.clip.arch'] == 'ViT-B-16'
    assert dtd['optim_wrapper.lambda_'] == '0.8'
    with pytest.raises(SystemExit):
        run_sweep.parse_args(
            ['base2new', '--method', 'prograd', '--shots', '8'])
    assert 'base2new always uses 4 or 16 shots' in capsys.readouterr().err
    assert run_sweep.main([
        'fewshot', '--method', 'prograd', '--datasets', 'oxford-flowers',
        'caltech101', '--shots', '1', '8'
    ] + base) == 0
    runs = {
        work_dir(cmd).parent.name: options(cmd)
        for cmd in commands(capsys.readouterr().out)
    }
    expected = [(d, k, e) for d in ('caltech101', 'oxford-flowers')
                for k, e in ((1, 50), (8, 200))]
    assert sorted(runs) == sorted(
        f'prograd_resnet50_clip-openai_1xb32-ep{e}_{k}shot-{d}'
        for d, k, e in expected)
    flowers8 = runs['prograd_resnet50_clip-openai_1xb32-ep200_8shot-'
                    'oxford-flowers']
    assert flowers8['optim_wrapper.lambda_'] == '0.8'
    assert flowers8['train_dataloader.dataset.subsample_classes'] == 'all'
    assert 'optim_wrapper.lambda_' not in runs[
        'prograd_resnet50_clip-openai_1xb32-ep200_8shot-caltech101']


def test_dry_run_fewshot_schedule_and_backbones(capsys, tmp_path):
    base = ['--seeds', '1', '--work-dir', str(tmp_path), '--dry-run']
    assert run_sweep.main([
        'fewshot', '--datasets', 'eurosat', 'imagenet', '--shots', '1', '4',
        '16', '--backbone', 'resnet50', 'vit-base-p32'
    ] + base) == 0
    cmds = commands(capsys.readouterr().out)
    trains = [c for c in cmds if c[1].endswith('train.py')]
    names = [work_dir(c).parent.name for c in trains]
    # CoOp's epochs by shots (ImageNet always 50), in the names too.
    assert names[:6] == [
        'coop_resnet50_clip-openai_1xb32-ep50_1shot-eurosat',
        'coop_resnet50_clip-openai_1xb32-ep100_4shot-eurosat',
        'coop_resnet50_clip-openai_1xb32-ep200_16shot-eurosat',
        'coop_resnet50_clip-openai_1xb32-ep50_1shot-imagenet',
        'coop_resnet50_clip-openai_1xb32-ep50_4shot-imagenet',
        'coop_resnet50_clip-openai_1xb32-ep50_16shot-imagenet',
    ]
    assert names[6] == 'coop_vit-base-p32_clip-openai_1xb32-ep50_1shot-eurosat'
    epochs = [options(c)['train_cfg.max_epochs'] for c in trains[:3]]
    assert epochs == ['50', '100', '200']
    assert [options(c)['param_scheduler.T_max'] for c in trains[:3]] == epochs
    # The original's drop_last = len(dataset) >= batch_size: EuroSAT 1 shot
    # is 10 images, 4 shots 40.
    assert [options(c)['train_dataloader.drop_last']
            for c in trains[:3]] == ['False', 'True', 'True']
    assert options(trains[0])['val_dataloader.dataset.num_shots'] == '1'
    assert {options(c)['model.clip.arch']
            for c in trains} == {'RN50', 'ViT-B-32'}


def test_dry_run_fewshot_tip_adapter(capsys, tmp_path):
    """Tip-Adapter(-F): the wrapped image datasets get the data options,
    each dataset its configs/<dataset>.yaml settings, no drop_last rule;
    training-free runs save epoch_1.pth and have no schedule in their
    names; ImageNet (no val split) searches nothing."""
    base = ['--seeds', '2', '--work-dir', str(tmp_path), '--dry-run']
    assert run_sweep.main([
        'fewshot', '--method', 'tip-adapter-f', '--datasets', 'eurosat',
        'imagenet', '--shots', '4'
    ] + base) == 0
    cmds = commands(capsys.readouterr().out)
    trains = [c for c in cmds if c[1].endswith('train.py')]
    assert [work_dir(c).parent.name for c in trains] == [
        'tip-adapter-f_resnet50_clip-openai_1xb256-ep100_4shot-eurosat',
        'tip-adapter-f_resnet50_clip-openai_1xb256-ep20_4shot-imagenet',
    ]
    eurosat, imagenet = options(trains[0]), options(trains[1])
    for key in ('type', 'data_root', 'num_shots', 'seed'):
        assert f'train_dataloader.dataset.dataset.{key}' in eurosat
        assert f'val_dataloader.dataset.dataset.{key}' in eurosat
        assert f'train_dataloader.dataset.{key}' not in eurosat
    assert eurosat['train_dataloader.dataset.dataset.num_shots'] == '4'
    assert eurosat['val_dataloader.dataset.dataset.seed'] == '2'
    assert 'train_dataloader.drop_last' not in eurosat
    assert eurosat['model.adapter.alpha'] == '2.0'
    assert eurosat['model.adapter.search.beta_max'] == '12.0'
    assert eurosat['model.adapter.search.alpha_max'] == '10.0'
    assert eurosat['model.text.templates'] == 'EuroSAT'
    assert eurosat['train_cfg.search_split'] == 'val'
    assert imagenet['model.adapter.search'] == 'None'
    assert imagenet['train_cfg.search_split'] == 'train'
    assert imagenet['val_cfg'] == 'None'
    assert imagenet['model.text.templates'] == 'imagenet-7'
    tests = [c for c in cmds if c[1].endswith('test.py')]
    assert tests[0][3].endswith('epoch_100.pth')

    assert run_sweep.main(
        ['fewshot', '--method', 'tip-adapter', '--datasets', 'dtd'] + base +
        ['--shots', '1']) == 0
    cmds = commands(capsys.readouterr().out)
    train, test = cmds
    assert work_dir(train).parent.name == \
        'tip-adapter_resnet50_clip-openai_1shot-dtd'
    assert options(train)['model.adapter.finetune'] == 'False'
    assert options(train)['train_cfg.max_epochs'] == '0'
    assert options(train)['train_cfg.val_interval'] == '1'
    assert test[3].endswith('epoch_1.pth')


def test_dry_run_cross_dataset(capsys, tmp_path):
    assert run_sweep.main([
        'cross-dataset', '--seeds', '3', '--work-dir',
        str(tmp_path), '--dry-run'
    ]) == 0
    cmds = commands(capsys.readouterr().out)
    assert len(cmds) == 1 + 1 + 10  # train, ImageNet test, 10 targets
    source = 'cocoop_vit-base-p16_clip-openai_1xb1-ep10_16shot-imagenet'
    checkpoint = str(tmp_path / 'cross-dataset' / 'imagenet' / source /
                     'seed3' / 'epoch_10.pth')
    assert all(c[3] == checkpoint for c in cmds[1:])
    targets = [work_dir(c).parts[-3] for c in cmds[2:]]
    assert targets == list(run_sweep.XD_TARGETS)
    dtd = cmds[2 + targets.index('dtd')]
    assert work_dir(dtd).parent.name == f'{source}-to-dtd'
    assert options(dtd)['test_dataloader.dataset.type'] == \
        'DescribableTextures'
    assert options(dtd)['test_dataloader.dataset.subsample_classes'] == 'all'
    assert options(dtd)['train_dataloader.dataset.type'] == 'ImageNet'


def test_planning_errors(capsys, tmp_path):
    # An unknown dataset: the allowed ones are named.
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['base2new', '--datasets', 'mnist'])
    err = capsys.readouterr().err
    assert "unknown base2new dataset 'mnist'" in err
    assert 'allowed: imagenet, caltech101' in err
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['dg', '--datasets', 'imagenet'])
    assert 'allowed: caltech101' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['base2new', '--shots', '4'])
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['fewshot', '--method', 'cocoop'])
    assert 'fewshot has no cocoop config' in capsys.readouterr().err
    # A config the settings do not fit (no val loader to point at DTD):
    # nothing runs, exit status 2, the reason is named.
    imagenet = (
        REPO_ROOT / 'configs' / 'cocoop' /
        'cocoop_vit-base-p16_clip-openai_1xb1-ep10_16shot-imagenet.py')
    assert run_sweep.main([
        'base2new', '--config',
        str(imagenet), '--datasets', 'dtd', '--work-dir',
        str(tmp_path), '--dry-run'
    ]) == 2
    assert "settings of 'dtd' do not fit" in capsys.readouterr().err


def _model_zoo_training_configs():
    """Model-zoo configs of the trained methods, from the metafiles."""
    found = []
    for method in ('coop', 'cocoop', 'kgcoop', 'prograd', 'maple', 'ivlp',
                   'promptsrc', 'tip_adapter', 'linear_probe', 'lpp',
                   'clip_adapter'):
        meta = (REPO_ROOT / 'configs' / method / 'metafile.yml').read_text()
        found += re.findall(r'Config: (configs/\S+\.py)', meta)
    return sorted(set(found))


def test_sweep_runs_are_the_model_zoo_configs(capsys, tmp_path):
    """Independent of the tables: a sweep run named as a model-zoo config
    has exactly that config's settings, and every model-zoo config is a
    run of some sweep."""
    sweeps = [
        [
            'fewshot', '--datasets', 'imagenet', 'caltech101', 'dtd',
            'oxford-flowers', '--shots', '16', '--backbone', 'resnet50',
            'vit-base-p32', 'vit-base-p16'
        ],
        ['base2new', '--method', 'coop'],
        ['base2new', '--method', 'cocoop'],
        ['base2new', '--method', 'kgcoop'],
        ['base2new', '--method', 'prograd'],
        ['base2new', '--method', 'maple'],
        ['base2new', '--method', 'ivlp'],
        ['base2new', '--method', 'promptsrc'],
        [
            'fewshot', '--method', 'tip-adapter-f', '--shots', '16',
            '--backbone', 'resnet50'
        ],
        [
            'fewshot', '--method', 'tip-adapter', '--datasets', 'imagenet',
            '--shots', '16'
        ],
        [
            'fewshot', '--method', 'linear-probe', '--datasets', 'imagenet',
            '--shots', '16', '--backbone', 'resnet50', 'vit-base-p16'
        ],
        [
            'fewshot', '--method', 'lpp', '--datasets', 'oxford-pets',
            '--shots', '4'
        ],
        [
            'fewshot', '--method', 'clip-adapter', '--datasets', 'imagenet',
            'caltech101', '--shots', '16'
        ],
        ['cross-dataset', '--method', 'coop'],
        ['cross-dataset', '--method', 'cocoop'],
        ['dg', '--method', 'coop'],
        ['dg', '--method', 'cocoop'],
    ]
    # CoOp IJCV Table 1: M=16 and M=4 from CoOp's ImageNet config.
    rn50 = str(REPO_ROOT / 'configs' / 'coop' /
               'coop_resnet50_clip-openai_1xb32-ep50_16shot-imagenet.py')
    for algorithm, n_ctx in (('coop', 16), ('coop-m4', 4)):
        sweeps.append([
            'dg', '--method', 'coop', '--config', rn50, '--algorithm',
            algorithm, '--backbone', 'resnet50', 'vit-base-p16',
            '--cfg-options', f'model.head.prompt_learner.n_ctx={n_ctx}'
        ])
    runs = {}  # folder name: the command of its run (train or test)
    for argv in sweeps:
        assert run_sweep.main(
            argv + ['--seeds', '1', '--work-dir',
                    str(tmp_path), '--dry-run']) == 0
        for cmd in commands(capsys.readouterr().out):
            runs[work_dir(cmd).parent.name] = cmd
    configs = _model_zoo_training_configs()
    assert len(configs) >= 20
    for rel in configs:
        name = Path(rel).stem
        assert name in runs, f'no sweep runs {rel}'
        cmd = runs[name]
        cfg = Config.fromfile(cmd[2], import_custom_modules=False)
        cfg.merge_from_dict(
            run_sweep.parse_cfg_options(cmd[cmd.index('--cfg-options') + 1:]))
        want = Config.fromfile(
            str(REPO_ROOT / rel), import_custom_modules=False)
        assert cfg.to_dict() == want.to_dict(), rel


class FakeTools:
    """Stands in for train.py / test.py: writes checkpoints and metrics."""

    def __init__(self, fail_tests_of: str = '') -> None:
        self.calls = []
        self.fail_tests_of = fail_tests_of

    def __call__(self, cmd, stdout=None, **kwargs):
        self.calls.append(cmd)
        folder = work_dir(cmd)
        folder.mkdir(parents=True, exist_ok=True)
        if cmd[1].endswith('train.py'):
            (folder / 'epoch_10.pth').write_bytes(b'')
            (folder / 'last_checkpoint').write_text('epoch_10.pth')
        elif self.fail_tests_of and self.fail_tests_of in str(folder):
            stdout.write('Traceback: something broke\n')
            return subprocess.CompletedProcess(cmd, 1)
        else:
            out = Path(cmd[cmd.index('--out') + 1])
            out.write_text('{"accuracy/top1": 50.0}')
        return subprocess.CompletedProcess(cmd, 0)


def test_skip_resume_failures_and_records(monkeypatch, capsys, tmp_path):
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
    assert [('--resume' in c, work_dir(c).name, work_dir(c).parts[-3])
            for c in trains] == [(True, 'seed1', 'dtd'),
                                 (False, 'seed1', 'eurosat'),
                                 (False, 'seed2', 'eurosat')]
    tests = [work_dir(c) for c in fake.calls if c[1].endswith('test.py')]
    assert tests.count(dtd / 'seed2') == 0  # its base test is done
    assert len(tests) == 2 + 1 + 4
    # The failure is reported with its log and the sweep went on.
    assert out.count('FAILED') == 2 and 'something broke' in out
    assert '2 failed' in out
    new = dtd.parent / f"{COCOOP_B2N.format('dtd')}_new"
    assert (new / 'seed2' / 'metrics.json').is_file()
    # Every folder says what it holds, for summarize_results.py.
    record = json.loads((new / 'seed2' / 'sweep.json').read_text())
    assert record['run'] == COCOOP_B2N.format('dtd')
    assert (record['protocol'], record['dataset'], record['trained_on'],
            record['classes'], record['shots'], record['seed'],
            record['algorithm'],
            record['backbone']) == ('base2new', 'dtd', 'dtd', 'new', 16, 2,
                                    'cocoop', 'vit-base-p16')
    assert 'test_dataloader.dataset.subsample_classes=new' in \
        record['cfg_options']
    base = json.loads((dtd / 'seed2' / 'sweep.json').read_text())
    assert base['classes'] == 'base'

    # Run again: only the failed tests are left, and now they pass.
    fake = FakeTools()
    monkeypatch.setattr(run_sweep.subprocess, 'run', fake)
    assert run_sweep.main(argv) == 0
    assert [work_dir(c).parent.name
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
    assert options(cmds[-1])['test_dataloader.dataset.type'] == 'ImageNetR'


def test_dataset_table_matches_the_dataset_configs():
    """The sweep's datasets are those of configs/_base_/datasets."""
    bases = {}
    for path in (REPO_ROOT / 'configs' / '_base_' / 'datasets').glob('*.py'):
        if path.name != 'pipelines.py':
            cfg = Config.fromfile(str(path), import_custom_modules=False)
            bases[cfg.dataset_type] = cfg
    table = {**run_sweep.DATASETS, **run_sweep.TEST_DATASETS}
    assert sorted(d.type for d in table.values()) == sorted(bases)
    for name, dataset in table.items():
        cfg = bases[dataset.type]
        assert cfg.data_root == dataset.data_root, name
        if name in run_sweep.DATASETS:
            assert (cfg.val_dataloader is not None) == dataset.has_val, name
        else:
            assert cfg.get('train_dataloader') is None, name


def test_config_dataset_keeps_the_configs_data(capsys, tmp_path):
    """A dataset of one's own: the config's loaders stay as they are."""
    demo = (
        REPO_ROOT / 'configs' / 'demo' /
        'coop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py')
    assert run_sweep.main([
        'base2new', '--method', 'coop', '--config',
        str(demo), '--config-dataset', 'shapes', '--algorithm', 'mine',
        '--seeds', '1', '--work-dir',
        str(tmp_path), '--dry-run'
    ]) == 0
    train = commands(capsys.readouterr().out)[0]
    assert work_dir(train).parts[-3:] == (
        'shapes', 'mine_mmprompt-tiny-vit_clip-openai_1xb4-ep200_'
        'base2new-16shot-shapes', 'seed1')
    opts = options(train)
    assert not any(key.endswith(('.type', '.data_root')) for key in opts)
    assert not any(key.startswith('val_') for key in opts)  # it has none
    assert 'train_dataloader.drop_last' not in opts
    assert opts['train_dataloader.dataset.subsample_classes'] == 'base'
    assert opts['train_dataloader.dataset.num_shots'] == '16'
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['base2new', '--config-dataset', 'shapes'])


@pytest.mark.parametrize('method', ['coop', 'cocoop'])
def test_demo_sweep_as_documented(method, capsys, tmp_path, monkeypatch):
    """``--demo``: the demo's config and data, its 10 epochs (not CoOp's
    200), folders under ``shapes``; the data is made when missing (not in a
    dry run)."""
    argv = [
        'base2new', '--method', method, '--demo', '--seeds', '1', '2',
        '--work-dir',
        str(tmp_path / 'work_dirs')
    ]
    made = []
    monkeypatch.setattr(run_sweep, 'prepare_demo', made.append)
    assert run_sweep.main(argv + ['--dry-run']) == 0
    assert made == []
    cmds = commands(capsys.readouterr().out)
    assert [c[1].rsplit('/', 1)[-1]
            for c in cmds[:3]] == ['train.py', 'test.py', 'test.py']
    train = cmds[0]
    assert train[2] == str(
        REPO_ROOT / 'configs' / 'demo' /
        f'{method}_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py')
    run = (f'{method}_mmprompt-tiny-vit_clip-openai_1xb4-ep10_'
           'base2new-16shot-shapes')
    assert work_dir(train).parts[-4:] == ('base2new', 'shapes', run, 'seed1')
    assert work_dir(cmds[2]).parts[-2:] == (f'{run}_new', 'seed1')
    opts = options(train)
    assert not any(
        key.startswith(('train_cfg', 'param_scheduler')) for key in opts)
    assert opts['train_dataloader.dataset.subsample_classes'] == 'base'
    assert opts['randomness.seed'] == '1'
    assert len(cmds) == 6  # 2 seeds x (train, base test, new test)
    # a real sweep makes the demo data first (the tools run with the
    # demo config's relative data root, from the current folder)
    monkeypatch.setattr(run_sweep, 'run_step', lambda step, cmd: (True, ''))
    monkeypatch.chdir(tmp_path)
    run_sweep.main(argv)
    assert made == ['data/mmprompt-demo']
    for bad in (['--config',
                 train[2]], ['--backbone',
                             'resnet50'], ['--datasets',
                                           'dtd'], ['--config-dataset', 'x']):
        with pytest.raises(SystemExit):
            run_sweep.parse_args(['base2new', '--demo'] + bad)
        assert '--demo' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['dg', '--demo'])
    assert 'dg' in capsys.readouterr().err


def test_demo_fewshot_tip_adapter(capsys, tmp_path, monkeypatch):
    """``--demo`` with Tip-Adapter-F and training-free Tip-Adapter: the
    demo's cached-feature config, its options on the wrapped datasets, its
    20 epochs (training-free: none, epoch_1.pth); fewshot only."""
    monkeypatch.setattr(run_sweep, 'prepare_demo', lambda root: None)
    base = [
        'fewshot', '--demo', '--shots', '1', '--seeds', '1', '--work-dir',
        str(tmp_path), '--dry-run'
    ]
    assert run_sweep.main(base + ['--method', 'tip-adapter-f']) == 0
    train, test = commands(capsys.readouterr().out)
    assert Path(train[2]).name == \
        'tip-adapter-f_tiny-vit_shapes_1xb256-ep20_16shot-shapes.py'
    assert work_dir(train).parent.name == \
        'tip-adapter-f_mmprompt-tiny-vit_clip-openai_1xb256-ep20_1shot-shapes'
    opts = options(train)
    assert opts['train_dataloader.dataset.dataset.num_shots'] == '1'
    assert opts['test_dataloader.dataset.dataset.subsample_classes'] == 'all'
    assert 'train_cfg.max_epochs' not in opts
    assert test[3].endswith('epoch_20.pth')
    assert run_sweep.main(base + ['--method', 'tip-adapter']) == 0
    train, test = commands(capsys.readouterr().out)
    assert options(train)['train_cfg.max_epochs'] == '0'
    assert options(train)['model.adapter.finetune'] == 'False'
    assert test[3].endswith('epoch_1.pth')
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['base2new', '--demo', '--method', 'tip-adapter'])


def test_dry_run_fewshot_linear_probes_and_clip_adapter(
        capsys, tmp_path, monkeypatch):
    """The linear probe (C on val; ImageNet on the training features, no
    schedule, epoch_1.pth), LP++ (Tip-Adapter's templates, the epoch on
    val; ImageNet the 7 templates) and CLIP-Adapter (CoOp's epochs by
    shots, the dataset's template); fewshot only; the linear probe on the
    demo."""
    base = ['--seeds', '1', '--work-dir', str(tmp_path), '--dry-run']
    assert run_sweep.main([
        'fewshot', '--method', 'linear-probe', '--datasets', 'dtd', 'imagenet',
        '--shots', '2'
    ] + base) == 0
    cmds = commands(capsys.readouterr().out)
    trains = [c for c in cmds if c[1].endswith('train.py')]
    assert [work_dir(c).parent.name for c in trains] == [
        'linear-probe_vit-base-p16_clip-openai_2shot-dtd',
        'linear-probe_vit-base-p16_clip-openai_2shot-imagenet'
    ]
    dtd, imagenet = options(trains[0]), options(trains[1])
    assert dtd['model.adapter.search_split'] == 'val'
    assert dtd['train_cfg.search_split'] == 'val'
    assert dtd['val_dataloader.dataset.dataset.num_shots'] == '2'
    assert dtd['train_cfg.max_epochs'] == '0'
    assert 'param_scheduler.T_max' not in dtd  # it has no schedule
    assert imagenet['model.adapter.search_split'] == 'train'
    assert imagenet['val_dataloader'] == 'None'
    assert [c[3] for c in cmds
            if c[1].endswith('test.py')][0].endswith('epoch_1.pth')

    assert run_sweep.main([
        'fewshot', '--method', 'lpp', '--datasets', 'eurosat', 'imagenet',
        '--shots', '1'
    ] + base) == 0
    trains = [
        c for c in commands(capsys.readouterr().out)
        if c[1].endswith('train.py')
    ]
    eurosat, imagenet = options(trains[0]), options(trains[1])
    assert work_dir(trains[0]).parent.name == \
        'lpp_resnet50_clip-openai_1shot-eurosat'
    assert eurosat['model.text.templates'] == 'EuroSAT'
    assert imagenet['model.text.templates'] == 'imagenet-7'
    assert imagenet['train_cfg.search_split'] == 'train'

    assert run_sweep.main([
        'fewshot', '--method', 'clip-adapter', '--datasets', 'dtd', '--shots',
        '1', '4'
    ] + base) == 0
    trains = [
        c for c in commands(capsys.readouterr().out)
        if c[1].endswith('train.py')
    ]
    assert [work_dir(c).parent.name for c in trains] == [
        'clip-adapter_resnet50_clip-openai_1xb32-ep50_1shot-dtd',
        'clip-adapter_resnet50_clip-openai_1xb32-ep100_4shot-dtd'
    ]
    assert options(trains[0])['param_scheduler.T_max'] == '50'
    assert options(trains[0])['model.text.templates'] == \
        'DescribableTextures'
    for method in ('linear-probe', 'lpp', 'clip-adapter'):
        with pytest.raises(SystemExit):
            run_sweep.parse_args(['base2new', '--method', method])
    assert 'fewshot protocol only' in capsys.readouterr().err

    monkeypatch.setattr(run_sweep, 'prepare_demo', lambda root: None)
    assert run_sweep.main(
        ['fewshot', '--demo', '--method', 'linear-probe', '--shots', '1'] +
        base) == 0
    train, test = commands(capsys.readouterr().out)
    assert Path(train[2]).name == \
        'linear-probe_tiny-vit_shapes_16shot-shapes.py'
    assert options(train)['train_cfg.max_epochs'] == '0'
    assert test[3].endswith('epoch_1.pth')


def test_demo_fewshot_of_several_methods(capsys, tmp_path, monkeypatch):
    """One command sweeps zero-shot CLIP, the linear probe, Tip-Adapter-F,
    CoOp and CoCoOp on the demo: each from its demo config; zero-shot runs
    are tests without training or checkpoint, one per shot count."""
    monkeypatch.setattr(run_sweep, 'prepare_demo', lambda root: None)
    methods = ['zeroshot', 'linear-probe', 'tip-adapter-f', 'coop', 'cocoop']
    assert run_sweep.main([
        'fewshot', '--demo', '--method', *methods, '--shots', '1', '2',
        '--seeds', '1', '2', '--work-dir',
        str(tmp_path), '--dry-run'
    ]) == 0
    out = capsys.readouterr().out
    assert out.startswith('20 jobs: 0 done already, 20 to run')
    cmds = commands(out)
    runs = {work_dir(c).parent.name.split('_')[0] for c in cmds}
    assert runs == set(methods)
    zeroshot = [c for c in cmds if 'zeroshot' in str(work_dir(c))]
    assert len(zeroshot) == 4  # 2 shots x 2 seeds, tests only
    for cmd in zeroshot:
        assert cmd[1].endswith('test.py')
        assert Path(cmd[2]).name == 'zeroshot_tiny-vit_shapes_shapes.py'
        assert cmd[3] == '--work-dir'  # no checkpoint
        assert not any(k.startswith('train_dataloader') for k in options(cmd))
    trains = [c for c in cmds if c[1].endswith('train.py')]
    assert len(trains) == 4 * 4  # the other 4 methods
    # each method the same as its own sweep
    for method in ('tip-adapter-f', 'coop'):
        alone = [
            c for c in cmds if work_dir(c).parent.name.startswith(method + '_')
        ]
        assert run_sweep.main([
            'fewshot', '--demo', '--method', method, '--shots', '1', '2',
            '--seeds', '1', '2', '--work-dir',
            str(tmp_path), '--dry-run'
        ]) == 0
        assert commands(capsys.readouterr().out) == alone
    with pytest.raises(SystemExit):
        run_sweep.parse_args(['fewshot', '--method', 'coop', 'coop'])
    with pytest.raises(SystemExit):
        run_sweep.parse_args([
            'fewshot', '--method', 'coop', 'cocoop', '--config',
            str(COCOOP_PETS)
        ])
