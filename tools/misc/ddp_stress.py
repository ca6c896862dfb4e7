# Copyright (c) mmprompt contributors. All rights reserved.
"""Run N distributed trainings in a row and report their exit codes.

Each run is ``tools/dist_train.sh CONFIG NPROC`` (torchrun; gloo on CPUs)
on a free port, in a work dir of its own. Without ``--config`` the runs
train the demo's CoCoOp config for 2 epochs on a tiny generated copy of the
demo's data with a random tiny CLIP (no download, no GPU), with random
crops and flips and validation after each epoch. The exit status is 0 only
if every run exited 0 and none printed ``terminate called`` (a C++ abort at
exit).

    python tools/misc/ddp_stress.py --runs 20
    python tools/misc/ddp_stress.py --runs 5 --nproc 4 --work-dir /tmp/ddp
    python tools/misc/ddp_stress.py --runs 40 --jobs 2   # two at a time
    python tools/misc/ddp_stress.py --config CONFIG --runs 3 \\
        --cfg-options train_cfg.max_epochs=1

With ``--compare``, the learned tensors of every run's last checkpoint
are compared with the first run's (they must agree to float reduction
order: 2 processes are deterministic on CPUs).
"""
import argparse
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIST_TRAIN = osp.join(ROOT, 'tools', 'dist_train.sh')
DEMO_CONFIG = osp.join(
    ROOT, 'configs', 'demo',
    'cocoop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py')

TINY_CONFIG = '''\
# Written by tools/misc/ddp_stress.py: the demo's CoCoOp on tiny data.
_base_ = [{base!r}]
data_root = {data_root!r}
model = dict(clip=dict(pretrained=None))
train_dataloader = dict(
    batch_size={batch_size},
    dataset=dict(data_root=data_root, num_shots=-1))
test_dataloader = dict(dataset=dict(data_root=data_root, num_shots=-1))
# Validation after every epoch: collective operations up to the end.
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='SplitJsonDataset',
        data_root=data_root,
        split_file='split_zhou_Shapes.json',
        image_dir='images',
        split='val',
        subsample_classes='base',
        pipeline={{{{_base_.test_pipeline}}}}))
val_evaluator = dict(type='Accuracy', topk=(1, ))
val_cfg = dict()
train_cfg = dict(max_epochs=2, val_interval=1)
param_scheduler = dict(T_max=2)
default_hooks = dict(logger=dict(interval=1))
'''


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run N distributed trainings in a row (torchrun through '
        'tools/dist_train.sh) and report their exit codes.')
    parser.add_argument(
        '--runs', type=int, default=20, help='number of runs (default: 20)')
    parser.add_argument(
        '--nproc', type=int, default=2, help='processes per run (default: 2)')
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='runs at a time (default: 1, one after the other); more load '
        'the machine, which makes races at exit likelier')
    parser.add_argument(
        '--config',
        help='the config to train (default: the demo\'s CoCoOp, 2 epochs '
        'on tiny generated data with a random tiny CLIP)')
    parser.add_argument(
        '--work-dir',
        help='where the runs\' folders go (default: a temporary folder, '
        'removed at the end unless a run failed or --keep)')
    parser.add_argument(
        '--keep', action='store_true', help='keep the work dir of every run')
    parser.add_argument(
        '--compare',
        action='store_true',
        help='check that every run ends with the first run\'s learned '
        'tensors (to 1e-6)')
    parser.add_argument(
        '--timeout',
        type=float,
        default=600,
        help='seconds a run may take (default: 600)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='passed to every run\'s tools/train.py')
    args = parser.parse_args(argv)
    if min(args.runs, args.nproc, args.jobs) < 1:
        parser.error(f'--runs, --nproc and --jobs must be >= 1, got '
                     f'{args.runs}, {args.nproc} and {args.jobs}')
    if args.config is not None and not osp.isfile(args.config):
        parser.error(f'--config {args.config!r}: no such file')
    return args


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def write_tiny_setup(folder: str, nproc: int) -> str:
    """Tiny demo data (8 base classes x 2 training images) and its config.

    Returns:
        str: The config file.
    """
    from mmprompt.demo import SPLIT_FILE, write_shapes_dataset
    data_root = osp.join(folder, 'data')
    os.makedirs(data_root)
    write_shapes_dataset(
        data_root,
        osp.join(data_root, SPLIT_FILE),
        images_per_class=5,
        image_size=32,
        seed=0)
    config = osp.join(folder, 'ddp_stress_tiny.py')
    with open(config, 'w') as f:
        f.write(
            TINY_CONFIG.format(
                base=DEMO_CONFIG,
                data_root=data_root,
                batch_size=max(1, 4 // nproc)))
    return config


def run_once(config: str, nproc: int, work_dir: str, cfg_options: List[str],
             timeout: float) -> dict:
    """One ``dist_train.sh`` run; its exit code, time and output file."""
    os.makedirs(work_dir, exist_ok=True)
    log = osp.join(work_dir, 'stdout.log')
    cmd = ['bash', DIST_TRAIN, config, str(nproc), '--work-dir', work_dir]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    # PYTHONFAULTHANDLER: an aborted process prints where it was.
    env = dict(
        os.environ,
        PORT=str(free_port()),
        OMP_NUM_THREADS='1',
        PYTHONFAULTHANDLER='1')
    start = time.time()
    with open(log, 'w') as f:
        try:
            rc = subprocess.run(
                cmd,
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 'timeout'
    with open(log, errors='replace') as f:
        aborted = 'terminate called' in f.read()
    return dict(rc=rc, seconds=time.time() - start, log=log, aborted=aborted)


def last_learned(work_dir: str) -> Optional[dict]:
    """The learned tensors of the run's newest checkpoint."""
    from mmprompt.utils import load_checkpoint_file
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        path = f.read().strip()
    if not osp.isabs(path):
        path = osp.join(work_dir, path)
    return load_checkpoint_file(path)['state_dict']


def main(argv=None) -> int:
    args = parse_args(argv)
    import mmprompt  # noqa: F401
    root = args.work_dir or tempfile.mkdtemp(prefix='ddp_stress_')
    os.makedirs(root, exist_ok=True)
    config = args.config or write_tiny_setup(
        tempfile.mkdtemp(prefix='setup_', dir=root), args.nproc)
    print(f'{args.runs} runs of {args.nproc} processes: '
          f'dist_train.sh {config} {args.nproc}; folders in {root}')
    results, reference = [], None
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    futures = [
        pool.submit(run_once, config, args.nproc,
                    osp.join(root,
                             f'run{i:03d}'), args.cfg_options, args.timeout)
        for i in range(args.runs)
    ]
    for i, future in enumerate(futures):
        work_dir = osp.join(root, f'run{i:03d}')
        result = future.result()
        note = ''
        if args.compare and result['rc'] == 0:
            state = last_learned(work_dir)
            if state is None:
                result['rc'] = 'no checkpoint'
            elif reference is None:
                reference = state
            elif sorted(state) != sorted(reference):
                result['rc'] = 'differs'
                note = '  other tensors than run 0'
            else:
                diff = max((state[k] - reference[k]).abs().max().item()
                           for k in reference
                           if reference[k].is_floating_point())
                note = f'  max |diff| to run 0: {diff:.2e}'
                if not diff <= 1e-6:
                    result['rc'] = 'differs'
        ok = result['rc'] == 0 and not result['aborted']
        results.append(result)
        print(
            f'run {i + 1:3d}/{args.runs}: exit {result["rc"]}'
            f'{" (terminate called)" if result["aborted"] else ""}, '
            f'{result["seconds"]:.1f} s{note}'
            f'{"" if ok else "  see " + result["log"]}',
            flush=True)
    pool.shutdown()
    failed = [r for r in results if r['rc'] != 0 or r['aborted']]
    codes = {}
    for r in results:
        codes[str(r['rc'])] = codes.get(str(r['rc']), 0) + 1
    print(f'{len(results) - len(failed)} of {len(results)} runs exited 0 '
          'without an abort; exit codes: ' +
          ', '.join(f'{c}: {n}' for c, n in sorted(codes.items())))
    if not failed and not args.keep and args.work_dir is None:
        shutil.rmtree(root, ignore_errors=True)
    elif failed:
        print(f'the runs\' folders and logs are kept in {root}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
