# Copyright (c) mmprompt contributors. All rights reserved.
"""Run a protocol of the papers over datasets x seeds (x shots x backbones).

Every run goes through ``tools/train.py`` and ``tools/test.py`` as a
subprocess, and every test writes its metrics (``--out-item metrics``) to
``metrics.json`` in its work dir. Work dirs follow the original scripts::

    work_dirs/<protocol>/<dataset>/<config name>/seed<S>

Protocols:

* ``fewshot``: train and test each ``{K}shot-{dataset}`` config.
* ``base2new``: train ``base2new-16shot-{dataset}`` on the base classes,
  test it (base accuracy), then test the same checkpoint with the ``_new``
  config (new accuracy, in the ``_new`` config's own work dir).
* ``cross-dataset`` / ``dg``: train ``16shot-imagenet`` once per seed,
  test it on ImageNet, then test that checkpoint with each
  ``16shot-imagenet-to-{target}`` config. Both protocols train the same
  model: a sweep reuses the other protocol's finished training.

A run whose metrics file exists is skipped; a training run with a
checkpoint but no final one is resumed (``--resume``), one without any is
restarted. A failed run is reported and the sweep goes on; the exit status
is 1 if any run failed.

Examples:
    python tools/run_sweep.py base2new --method cocoop --seeds 1 2 3
    python tools/run_sweep.py fewshot --method coop --backbone resnet50 \\
        --datasets caltech101 dtd --shots 1 2 4 8 16 --dry-run
    python tools/run_sweep.py cross-dataset --method cocoop \\
        --cfg-options model.clip.pretrained=/data/clip/ViT-B-16.pt
"""
import argparse
import glob
import os
import os.path as osp
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')

PROTOCOLS = ('fewshot', 'base2new', 'cross-dataset', 'dg')
METHODS = ('coop', 'cocoop')
#: The 11 datasets of the few-shot and base-to-new protocols.
DATASETS = ('imagenet', 'caltech101', 'oxford-pets', 'stanford-cars',
            'oxford-flowers', 'food101', 'fgvc-aircraft', 'sun397', 'dtd',
            'eurosat', 'ucf101')
XD_TARGETS = DATASETS[1:]
DG_TARGETS = ('imagenet-v2', 'imagenet-sketch', 'imagenet-a', 'imagenet-r')
SHOTS = (1, 2, 4, 8, 16)
SOURCE = 'imagenet'
DEFAULT_BACKBONE = dict(fewshot='resnet50')
METRICS_FILE = 'metrics.json'


@dataclass
class Step:
    """One subprocess of a job: a training or a test run."""
    kind: str  # 'train' or 'test'
    config: str
    work_dir: str
    seed: int
    checkpoint: Optional[str] = None  # test: the checkpoint to evaluate
    out: Optional[str] = None  # test: the metrics file
    resume: bool = False  # train: pass --resume
    has_val: bool = True  # train: the config has a val dataloader
    note: str = ''


@dataclass
class Job:
    """Training once, then testing that model with one or more configs."""
    name: str
    steps: List[Step] = field(default_factory=list)


def parse_config_name(path: str) -> Optional[Dict[str, str]]:
    """Split ``{algorithm}_{backbone}_{pretrain}_{schedule}_{data}[_new]``.

    Args:
        path (str): A config file path.

    Returns:
        dict | None: The five parts (``data`` keeps a ``_new`` suffix), or
        None if the name does not follow the scheme.
    """
    stem = osp.splitext(osp.basename(path))[0]
    parts = stem.split('_')
    if len(parts) == 6 and parts[5] == 'new':
        parts = parts[:4] + [f'{parts[4]}_new']
    if len(parts) != 5:
        return None
    return dict(
        zip(('algorithm', 'backbone', 'pretrain', 'schedule', 'data'), parts))


class ConfigIndex:
    """The configs of a folder, looked up by backbone, data and algorithm.

    Args:
        config_dir (str): The folder, e.g. ``configs/cocoop``.
    """

    def __init__(self, config_dir: str) -> None:
        self.config_dir = config_dir
        self.entries = []
        for path in sorted(glob.glob(osp.join(config_dir, '*.py'))):
            parts = parse_config_name(path)
            if parts is not None:
                self.entries.append((path, parts))

    def algorithms(self, backbone: str, datas: Sequence[str]) -> List[str]:
        """Algorithms with a config for every one of ``datas``."""
        found = None
        for data in datas:
            algos = {
                p['algorithm']
                for _, p in self.entries
                if p['backbone'] == backbone and p['data'] == data
            }
            found = algos if found is None else found & algos
        return sorted(found or ())

    def resolve_algorithm(self, method: str, algorithm: Optional[str],
                          backbone: str, datas: Sequence[str]) -> str:
        """The given algorithm, else the method's own name, else the only
        algorithm with all the configs (e.g. ``coop-ctxinit`` for CoOp
        base-to-new).

        Raises:
            LookupError: None fits, or several do and none is the method.
        """
        candidates = self.algorithms(backbone, datas)
        wanted = f'backbone {backbone!r}, data {list(datas)}'
        if algorithm is not None:
            if algorithm not in candidates:
                raise LookupError(
                    f'{self.config_dir}: no {algorithm!r} configs for '
                    f'{wanted}; algorithms with all of them: {candidates}')
            return algorithm
        if method in candidates:
            return method
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise LookupError(f'{self.config_dir}: no configs for {wanted}')
        raise LookupError(f'{self.config_dir}: several algorithms have '
                          f'configs for {wanted}: {candidates}; pick one '
                          'with --algorithm')

    def find(self, algorithm: str, backbone: str, data: str) -> str:
        """The one config of ``algorithm``, ``backbone`` and ``data``."""
        paths = [
            path for path, p in self.entries
            if (p['algorithm'], p['backbone'], p['data']) == (algorithm,
                                                              backbone, data)
        ]
        if len(paths) != 1:
            raise LookupError(
                f'{self.config_dir}: expected one {algorithm}_{backbone}_*_'
                f'{data}.py config, found {len(paths)}: {paths}')
        return paths[0]


def parse_cfg_options(options: Optional[List[str]]) -> dict:
    """``key=value`` strings to a dict, as train.py and test.py read them."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    if not options:
        return {}
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def inspect_config(path: str, cfg_options: dict) -> Tuple[str, bool]:
    """The final checkpoint's file name and whether there is a val loop.

    Args:
        path (str): The training config.
        cfg_options (dict): The sweep's ``--cfg-options``.

    Returns:
        tuple[str, bool]: e.g. ``('epoch_10.pth', True)``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(path, import_custom_modules=False)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    train_cfg = cfg.get('train_cfg') or {}
    if train_cfg.get('max_epochs') is not None:
        final = f'epoch_{train_cfg["max_epochs"]}.pth'
    elif train_cfg.get('max_iters') is not None:
        final = f'iter_{train_cfg["max_iters"]}.pth'
    else:
        raise ValueError(f'{path}: train_cfg has neither max_epochs nor '
                         'max_iters')
    return final, cfg.get('val_dataloader') is not None


def has_checkpoints(work_dir: str) -> bool:
    """Whether a training run left checkpoints to resume from (train.py
    refuses to start afresh over them)."""
    return osp.isfile(osp.join(work_dir, 'last_checkpoint')) or any(
        glob.glob(osp.join(work_dir, pattern))
        for pattern in ('epoch_*.pth', 'iter_*.pth'))


def config_name(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


class Planner:
    """Turn the command line into jobs, each a list of steps.

    Args:
        args (argparse.Namespace): The parsed command line.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.index = ConfigIndex(args.config_dir)
        self.cfg_options = parse_cfg_options(args.cfg_options)
        self._inspected = {}

    def run_dir(self, protocol: str, dataset: str, config: str,
                seed: int) -> str:
        return osp.join(self.args.work_dir, protocol, dataset,
                        config_name(config), f'seed{seed}')

    def _inspect(self, config: str) -> Tuple[str, bool]:
        if config not in self._inspected:
            self._inspected[config] = inspect_config(config, self.cfg_options)
        return self._inspected[config]

    def _train_and_tests(self,
                         name: str,
                         train_config: str,
                         train_dir: str,
                         seed: int,
                         tests: List[Tuple[str, str]],
                         reuse_dirs: Sequence[str] = ()) -> Job:
        """A job: train in ``train_dir`` unless done, then each test
        ``(config, work_dir)`` whose metrics are missing."""
        final, has_val = self._inspect(train_config)
        checkpoint = osp.join(train_dir, final)
        job = Job(name)
        outs = [osp.join(d, METRICS_FILE) for _, d in tests]
        if all(osp.isfile(o) for o in outs):
            return job  # nothing left to do
        reused = [
            osp.join(d, final) for d in reuse_dirs
            if osp.isfile(osp.join(d, final))
        ]
        if not osp.isfile(checkpoint) and reused:
            checkpoint = reused[0]
        elif not osp.isfile(checkpoint):
            resume = has_checkpoints(train_dir)
            job.steps.append(
                Step(
                    'train',
                    train_config,
                    train_dir,
                    seed,
                    resume=resume,
                    has_val=has_val,
                    note='resume' if resume else ''))
        for (config, work_dir), out in zip(tests, outs):
            if not osp.isfile(out):
                job.steps.append(
                    Step(
                        'test',
                        config,
                        work_dir,
                        seed,
                        checkpoint=checkpoint,
                        out=out,
                        note=('model of ' + osp.dirname(checkpoint))
                        if reused and checkpoint == reused[0] else ''))
        return job

    def plan(self) -> List[Job]:
        """All jobs of the sweep, in order.

        Raises:
            LookupError: A config is missing (nothing has run then).
        """
        args = self.args
        protocol = args.protocol
        jobs = []
        for backbone in args.backbone or [
                DEFAULT_BACKBONE.get(protocol, 'vit-base-p16')
        ]:
            if protocol == 'fewshot':
                jobs += self._plan_fewshot(backbone)
            elif protocol == 'base2new':
                jobs += self._plan_base2new(backbone)
            else:
                jobs += self._plan_transfer(backbone)
        return jobs

    def _plan_fewshot(self, backbone: str) -> List[Job]:
        args, jobs = self.args, []
        for dataset in args.datasets or DATASETS:
            datas = [f'{k}shot-{dataset}' for k in args.shots]
            algo = self.index.resolve_algorithm(args.method, args.algorithm,
                                                backbone, datas)
            for data in datas:
                config = self.index.find(algo, backbone, data)
                for seed in args.seeds:
                    work_dir = self.run_dir('fewshot', dataset, config, seed)
                    jobs.append(
                        self._train_and_tests(
                            f'fewshot/{dataset}/{config_name(config)}/'
                            f'seed{seed}', config, work_dir, seed,
                            [(config, work_dir)]))
        return jobs

    def _plan_base2new(self, backbone: str) -> List[Job]:
        args, jobs = self.args, []
        for dataset in args.datasets or DATASETS:
            data = f'base2new-16shot-{dataset}'
            algo = self.index.resolve_algorithm(args.method, args.algorithm,
                                                backbone,
                                                [data, f'{data}_new'])
            base = self.index.find(algo, backbone, data)
            new = self.index.find(algo, backbone, f'{data}_new')
            for seed in args.seeds:
                base_dir = self.run_dir('base2new', dataset, base, seed)
                new_dir = self.run_dir('base2new', dataset, new, seed)
                jobs.append(
                    self._train_and_tests(
                        f'base2new/{dataset}/{config_name(base)}/seed{seed}',
                        base, base_dir, seed, [(base, base_dir),
                                               (new, new_dir)]))
        return jobs

    def _plan_transfer(self, backbone: str) -> List[Job]:
        args, protocol = self.args, self.args.protocol
        targets = args.datasets or (XD_TARGETS if protocol == 'cross-dataset'
                                    else DG_TARGETS)
        source_data = f'16shot-{SOURCE}'
        datas = [source_data] + [f'{source_data}-to-{t}' for t in targets]
        algo = self.index.resolve_algorithm(args.method, args.algorithm,
                                            backbone, datas)
        source = self.index.find(algo, backbone, source_data)
        other = 'dg' if protocol == 'cross-dataset' else 'cross-dataset'
        jobs = []
        for seed in args.seeds:
            source_dir = self.run_dir(protocol, SOURCE, source, seed)
            tests = [(source, source_dir)]
            for target in targets:
                config = self.index.find(algo, backbone,
                                         f'{source_data}-to-{target}')
                tests.append(
                    (config, self.run_dir(protocol, target, config, seed)))
            jobs.append(
                self._train_and_tests(
                    f'{protocol}/{SOURCE}/{config_name(source)}/seed{seed}',
                    source,
                    source_dir,
                    seed,
                    tests,
                    reuse_dirs=[self.run_dir(other, SOURCE, source, seed)]))
        return jobs


def step_command(step: Step, cfg_options: Sequence[str]) -> List[str]:
    """The command line of a step.

    Args:
        step (Step): The step.
        cfg_options (Sequence[str]): The sweep's ``--cfg-options``, passed
            through after the seed options (so they can override them).

    Returns:
        list[str]: The argv, starting with the Python interpreter.
    """
    seed = step.seed
    if step.kind == 'train':
        options = [
            f'randomness.seed={seed}', f'train_dataloader.dataset.seed={seed}'
        ]
        if step.has_val:
            options.append(f'val_dataloader.dataset.seed={seed}')
        cmd = [sys.executable, TRAIN, step.config, '--work-dir', step.work_dir]
        if step.resume:
            cmd.append('--resume')
    else:
        options = []
        cmd = [
            sys.executable, TEST, step.config, step.checkpoint, '--work-dir',
            step.work_dir, '--out', step.out, '--out-item', 'metrics',
            '--no-progress'
        ]
    options += list(cfg_options or [])
    if options:
        cmd += ['--cfg-options', *options]
    return cmd


def run_step(step: Step, cmd: List[str]) -> Tuple[bool, str]:
    """Run a step, its output going to ``<work_dir>/<kind>.out``.

    Returns:
        tuple[bool, str]: Whether it succeeded, and a reason if not.
    """
    os.makedirs(step.work_dir, exist_ok=True)
    log = osp.join(step.work_dir, f'{step.kind}.out')
    if step.kind == 'test' and not osp.isfile(step.checkpoint):
        return False, f'checkpoint {step.checkpoint} does not exist'
    with open(log, 'w') as f:
        f.write(shlex.join(cmd) + '\n')
        f.flush()
        proc = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, cwd=os.getcwd())
    if proc.returncode != 0:
        with open(log) as f:
            tail = ''.join(f.readlines()[-15:])
        return False, (f'exit status {proc.returncode}; end of {log}:\n'
                       f'{tail}')
    if step.kind == 'test' and not osp.isfile(step.out):
        return False, f'{step.out} was not written (see {log})'
    return True, ''


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line of ``tools/run_sweep.py``."""
    parser = argparse.ArgumentParser(
        description='Run a CoOp/CoCoOp protocol over datasets, seeds, shots '
        'and backbones with tools/train.py and tools/test.py.')
    parser.add_argument('protocol', choices=PROTOCOLS)
    parser.add_argument(
        '--method',
        choices=METHODS,
        default='cocoop',
        help='picks the config folder configs/<method> (default: cocoop)')
    parser.add_argument(
        '--algorithm',
        help='the algorithm part of the config names, e.g. coop, coop-m4, '
        'coop-ctxinit (default: the method, else the only one with the '
        'configs, e.g. coop-ctxinit for CoOp base2new)')
    parser.add_argument(
        '--backbone',
        nargs='+',
        help='backbone part(s) of the config names: resnet50, resnet101, '
        'vit-base-p32, vit-base-p16 (default: resnet50 for fewshot, '
        'vit-base-p16 otherwise)')
    parser.add_argument(
        '--datasets',
        nargs='+',
        help='datasets (fewshot, base2new; default: all 11) or targets '
        '(cross-dataset: the 10 others, dg: the 4 ImageNet variants)')
    parser.add_argument(
        '--shots',
        nargs='+',
        type=int,
        default=list(SHOTS),
        help='fewshot only (default: 1 2 4 8 16)')
    parser.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        default=[1, 2, 3],
        help='run and few-shot seeds (default: 1 2 3)')
    parser.add_argument(
        '--config-dir',
        help='where the configs are (default: configs/<method> of this '
        'repository)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs',
        help='root of the run folders (default: work_dirs)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        help='passed to every train.py and test.py run, e.g. '
        'model.clip.pretrained=/data/clip/ViT-B-16.pt')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print the commands without running them')
    args = parser.parse_args(argv)
    if args.config_dir is None:
        args.config_dir = osp.join(ROOT, 'configs', args.method)
    if not osp.isdir(args.config_dir):
        parser.error(f'--config-dir {args.config_dir!r}: no such folder')
    if args.protocol != 'fewshot' and args.shots != list(SHOTS) and \
            args.shots != [16]:
        parser.error(f'--shots is for the fewshot protocol; {args.protocol}'
                     ' always uses 16 shots')
    return args


def main(argv=None) -> int:
    """Entry point of ``tools/run_sweep.py``.

    Returns:
        int: 0 if every run succeeded (or was done already), else 1; 2 if
        the sweep could not be planned.
    """
    args = parse_args(argv)
    try:
        jobs = Planner(args).plan()
    except (LookupError, ValueError, FileNotFoundError) as err:
        print(f'run_sweep.py: error: {err}', file=sys.stderr)
        return 2
    done = sum(1 for job in jobs if not job.steps)
    failed, succeeded = [], 0
    todo = [job for job in jobs if job.steps]
    print(f'{len(jobs)} jobs: {done} done already, {len(todo)} to run')
    for job in todo:
        print(f'== {job.name}')
        for step in job.steps:
            cmd = step_command(step, args.cfg_options)
            note = f'  # {step.note}' if step.note else ''
            print(f'  {shlex.join(cmd)}{note}', flush=True)
            if args.dry_run:
                continue
            ok, reason = run_step(step, cmd)
            if ok:
                succeeded += 1
                continue
            print(f'  FAILED: {reason}', flush=True)
            failed.append(f'{job.name} ({step.kind} {step.work_dir})')
            if step.kind == 'train':
                break  # its tests need its checkpoint
    if args.dry_run:
        return 0
    print(f'{succeeded} runs succeeded, {len(failed)} failed, {done} jobs '
          'were done already')
    for name in failed:
        print(f'  failed: {name}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
