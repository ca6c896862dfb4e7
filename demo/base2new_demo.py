# Copyright (c) mmprompt contributors. All rights reserved.
"""The embedded demo: base-to-new prompt learning, end to end, on any CPU.

It generates a small dataset of coloured shapes (image files and a split
file in CoOp's format) and a tiny CLIP on first use, trains CoCoOp
(or CoOp with ``--method coop``) on the base classes with mmengine's Runner,
tests on the base classes, tests the same checkpoint on the new classes, and
prints base accuracy, new accuracy and their harmonic mean H. The deep
prompt methods (``--method maple``, ``--method promptsrc``) are trained and
tested the same way, and CoCoOp beside them, whose row they are printed
with.

    python demo/base2new_demo.py
    python demo/base2new_demo.py --method coop
    python demo/base2new_demo.py --method promptsrc

The same steps with the standard tools::

    python tools/train.py CONFIG --work-dir WORK_DIR
    python tools/test.py CONFIG WORK_DIR/epoch_10.pth \\
        --cfg-options test_dataloader.dataset.subsample_classes=new

The tiny CLIP's image tower was aligned with its text tower on all 15
classes in a few seconds (see ``mmprompt/demo/tiny_clip.py``), a stand-in for
CLIP's pretraining: numbers are small-world numbers, the pipeline is real.

The screen shows a progress bar per run, any warning and the results; the
full log of the five runs (environment, config, hooks, every logged
iteration) goes to ``WORK_DIR/demo.log``.
"""
import argparse
import os.path as osp

from mmengine.config import Config
from mmengine.runner import Runner

import mmprompt  # noqa: F401
from mmprompt.demo import ProgressHook, prepare_demo_data, quiet_console
from mmprompt.evaluation import harmonic_mean

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    method:
    osp.join(ROOT, 'configs', 'demo',
             f'{method}_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py')
    for method in ('cocoop', 'coop', 'maple', 'promptsrc')
}
#: Methods printed beside CoCoOp's row (CoCoOp is trained too).
BESIDE_COCOOP = ('maple', 'promptsrc')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='mmprompt demo: train prompts on base classes of a '
        'generated dataset, test on base and new classes')
    parser.add_argument(
        '--method',
        choices=sorted(CONFIGS),
        default='cocoop',
        help='prompt learning method (default: cocoop)')
    parser.add_argument(
        '--data-root',
        default='data/mmprompt-demo',
        help='where the demo data is generated on first use and reused '
        'after (default: data/mmprompt-demo)')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go (default: '
        'work_dirs/demo-<method>)')
    parser.add_argument(
        '--epochs', type=int, help='override the number of epochs (10)')
    parser.add_argument(
        '--seed', type=int, default=1, help='few-shot and training seed')
    return parser.parse_args()


def point_at_data(cfg: Config, data_root: str, seed: int) -> None:
    cfg.model.clip.pretrained = osp.join(data_root,
                                         'mmprompt-tiny-vit_shapes.pt')
    for loader in ('train_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
        cfg[loader].dataset.seed = seed
    cfg.randomness = dict(seed=seed)


def main() -> None:
    args = parse_args()
    data_root = osp.abspath(args.data_root)
    prepare_demo_data(data_root)
    work_dir = args.work_dir or osp.join('work_dirs', f'demo-{args.method}')

    methods = [args.method]
    if args.method in BESIDE_COCOOP:
        methods.append('cocoop')
    log_file = osp.join(work_dir, 'demo.log')
    results, checkpoints = {}, {}
    with quiet_console(log_file, 'w') as screen:
        screen.write(f"{' and '.join(methods)} base-to-new on {data_root}; "
                     f'full log: {log_file}\n')
        for method in methods:
            cfg, runner, checkpoints[method] = train(args, method, data_root,
                                                     work_dir, screen)
            results[method] = (runner.test()['accuracy/top1'],
                               test(cfg, 'new', method, screen,
                                    checkpoints[method]))
        checkpoint = checkpoints[args.method]
        # The same frozen CLIP with the hand-written prompt, as a baseline.
        zero_shot = cfg.copy()
        zero_shot.model.head = dict(
            type='ZeroShotHead', templates='a photo of a {}.')
        results['zero-shot CLIP'] = (test(zero_shot, 'base', 'zero-shot',
                                          screen),
                                     test(zero_shot, 'new', 'zero-shot',
                                          screen))

    num_base = len(runner.test_dataloader.dataset.metainfo['classes'])
    lines = [
        f'\nBase-to-new on {data_root} ({num_base} base classes, chance '
        f'{100 / num_base:.1f}%)',
        f"  {'method':<16}{'base':>8}{'new':>8}{'H':>8}"
    ]
    for name, (base, new) in results.items():
        lines.append(f'  {name:<16}{base:>8.1f}{new:>8.1f}'
                     f'{harmonic_mean(base, new):>8.1f}')
    lines.append(f'  checkpoint: {checkpoint}')
    lines.append(f'  full log: {log_file}')
    table = '\n'.join(lines)
    print(table)
    with open(log_file, 'a', encoding='utf-8') as f:
        f.write(table + '\n')


def train(args: argparse.Namespace, method: str, data_root: str, work_dir: str,
          screen) -> tuple:
    """Train ``method`` on the base classes (a second method in a
    sub-folder of ``work_dir``); its config, runner and last checkpoint."""
    cfg = Config.fromfile(CONFIGS[method])
    point_at_data(cfg, data_root, args.seed)
    if method != args.method:
        work_dir = osp.join(work_dir, method)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'demo-{method}-base'
    if args.epochs is not None:
        cfg.train_cfg.max_epochs = args.epochs
        cfg.param_scheduler.T_max = args.epochs
    runner = Runner.from_cfg(cfg)
    runner.register_hook(
        ProgressHook(screen, f'train {method} (base)', f'test {method} base'))
    runner.train()
    checkpoint = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    return cfg, runner, checkpoint


def test(cfg: Config,
         classes: str,
         name: str,
         screen,
         checkpoint: str = None) -> float:
    """Top-1 accuracy of ``cfg``'s model on the base or new test classes,
    with a progress bar on ``screen``."""
    cfg = cfg.copy()
    cfg.test_dataloader.dataset.subsample_classes = classes
    cfg.load_from = checkpoint
    cfg.experiment_name = f'demo-{name}-{classes}'
    runner = Runner.from_cfg(cfg)
    runner.register_hook(
        ProgressHook(screen, test_label=f'test {name} {classes}'))
    return runner.test()['accuracy/top1']


if __name__ == '__main__':
    main()
