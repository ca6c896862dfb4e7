# Copyright (c) mmprompt contributors. All rights reserved.
"""Run a protocol of the papers over datasets x seeds (x shots x backbones).

Every run starts from the protocol's model-zoo config (``PROTOCOLS`` below)
or from ``--config``, and gets its settings as ``--cfg-options`` of
``tools/train.py`` and ``tools/test.py``, from the tables of this file:

* the dataset: its type and folder in the three loaders (ImageNet, which has
  no val split, also drops the val loop);
* the shots of the train and val sets, and the ``drop_last`` they imply
  (the original's ``len(dataset) >= batch_size``);
* the seed, of the run (``randomness.seed``) and of the few-shot draw (the
  datasets' ``seed``), which the original sets together;
* the classes trained and tested (``subsample_classes``: all, base, new);
* the epochs of the method's schedule, which for CoOp depend on the shots
  (1 shot 50, 2 and 4 shots 100, 8 and 16 shots 200, ImageNet 50);
* the backbone (``model.clip.arch``), with ``--backbone``;
* for a method whose loss has a hand-written-prompt teacher (KgCoOp,
  ProGrad), the teacher's template: the dataset's, in the method's table
  (``model.head.templates``, ``TEACHER_TEMPLATE_METHODS``);
* for a start config on cached features (Tip-Adapter(-F): its loaders
  read a ``CachedFeatureDataset``), the data, shots and seed options of the
  image dataset it wraps (``dataset_key``), and its own ``drop_last``;
* a method's own settings (``METHOD_OPTIONS``: ProGrad's λ 0.8 for
  Flowers102, DTD and EuroSAT at 8 and 16 shots) and shots (ProGrad's
  base-to-new: 4, its own table's; ``--shots 16`` for the comparison
  tables' setting).

The sweep's own ``--cfg-options`` come last, so they override all of these.
Nothing is read from config names. ``--config`` starts the runs from a
config of one's own (a variant, another method); with ``--config-dataset``
they train on that config's own dataset instead of one of the table.

Every test writes its metrics (``--out-item metrics``) to ``metrics.json``
in its folder, and every folder gets ``sweep.json``, the settings of what
it holds (what ``tools/analysis_tools/summarize_results.py`` reads).
Folders follow the original scripts::

    work_dirs/<protocol>/<dataset>/<run name>/seed<S>

where the run name spells the settings the way config names do,
``{algorithm}_{backbone}_clip-openai_1xb{batch}-ep{epochs}_{data}``, e.g.
``coop_resnet50_clip-openai_1xb32-ep50_1shot-eurosat``: the name of the
model-zoo config of the same settings, where there is one.

Protocols:

* ``fewshot``: train and test on all classes, for each number of shots.
* ``base2new``: train on the base classes, test on them, then test the same
  checkpoint on the new classes (folder ``<run name>_new``).
* ``cross-dataset`` / ``dg``: train on ImageNet once per seed, test it on
  ImageNet, then on each target (folders ``<run name>-to-<target>`` under
  the target's name). Both protocols train the same model: a sweep reuses
  the other protocol's finished training.

``--demo`` sweeps the embedded demo instead (its config and data, made
under ``data/mmprompt-demo`` if missing, and its 10 epochs for either
method), e.g. ``python tools/run_sweep.py base2new --demo --seeds 1 2 3``.

A run whose metrics file exists is skipped; a training run with a
checkpoint but no final one is resumed (``--resume``), one without any is
restarted. A failed run is reported and the sweep goes on; the exit status
is 1 if any run failed, 2 if the sweep could not be planned.

Examples:
    python tools/run_sweep.py base2new --method cocoop --seeds 1 2 3
    python tools/run_sweep.py fewshot --method coop --backbone resnet50 \\
        --datasets caltech101 dtd --shots 1 2 4 8 16 --dry-run
    python tools/run_sweep.py cross-dataset --method cocoop \\
        --cfg-options model.clip.pretrained=/data/clip/ViT-B-16.pt
    python tools/run_sweep.py base2new --method coop --demo --seeds 1 2 3
    python tools/run_sweep.py fewshot --method tip-adapter-f --seeds 1
    python tools/run_sweep.py fewshot --method tip-adapter-f --demo
    # zero-shot, the linear probe, Tip-Adapter-F, CoOp and CoCoOp on the
    # demo, 1-16 shots x 3 seeds, in one command (zero-shot runs are tests:
    # nothing is trained), then the table and the curves
    python tools/run_sweep.py fewshot --demo --method zeroshot \
        linear-probe tip-adapter-f coop cocoop
    python tools/analysis_tools/summarize_results.py work_dirs/fewshot
    python tools/analysis_tools/plot_results.py work_dirs/fewshot
"""
import argparse
import copy
import glob
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')
METRICS_FILE = 'metrics.json'
#: ``--demo``: the demo's configs, data folder and dataset name.
DEMO_CONFIG = osp.join(
    ROOT, 'configs', 'demo',
    '{method}_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py')
#: The demo configs not named as DEMO_CONFIG (methods on cached features).
_DEMO = osp.join(ROOT, 'configs', 'demo', '{}_tiny-vit_shapes_{}shapes.py')
#: Methods that train nothing: their runs are tests of the config as it is
#: (zero-shot CLIP), one per shot count for the curves.
TEST_ONLY_METHODS = ('zeroshot', )
DEMO_CONFIGS = {
    'zeroshot': _DEMO.format('zeroshot', ''),
    'tip-adapter-f': _DEMO.format('tip-adapter-f', '1xb256-ep20_16shot-'),
    'tip-adapter': _DEMO.format('tip-adapter-f', '1xb256-ep20_16shot-'),
    'linear-probe': _DEMO.format('linear-probe', '16shot-'),
}
#: Methods that cannot score classes they were not trained on (a cache of
#: the training classes' images, a classifier of the training classes):
#: the fewshot protocol only.
FEWSHOT_ONLY = ('tip-adapter-f', 'tip-adapter', 'linear-probe', 'lpp',
                'clip-adapter')
DEMO_DATA = 'data/mmprompt-demo'
DEMO_DATASET = 'shapes'
#: Protocols that run on the demo: it is one dataset, without ImageNet.
DEMO_PROTOCOLS = ('fewshot', 'base2new')
RECORD_FILE = 'sweep.json'


@dataclass(frozen=True)
class Dataset:
    """A dataset of the protocols, as the configs' loaders name it.

    Args:
        type (str): The registered dataset class.
        data_root (str): Its folder (docs/datasets.md).
        num_classes (int): The number of classes (for ``drop_last``).
        has_val (bool): Whether it has a val split. ImageNet has none (the
            original uses its val set as the test set): no validation.
    """
    type: str
    data_root: str
    num_classes: int
    has_val: bool = True


#: The 11 datasets of the few-shot and base-to-new protocols.
DATASETS = {
    'imagenet': Dataset('ImageNet', 'data/imagenet', 1000, has_val=False),
    'caltech101': Dataset('Caltech101', 'data/caltech-101', 100),
    'oxford-pets': Dataset('OxfordPets', 'data/oxford_pets', 37),
    'stanford-cars': Dataset('StanfordCars', 'data/stanford_cars', 196),
    'oxford-flowers': Dataset('OxfordFlowers', 'data/oxford_flowers', 102),
    'food101': Dataset('Food101', 'data/food-101', 101),
    'fgvc-aircraft': Dataset('FGVCAircraft', 'data/fgvc_aircraft', 100),
    'sun397': Dataset('SUN397', 'data/sun397', 397),
    'dtd': Dataset('DescribableTextures', 'data/dtd', 47),
    'eurosat': Dataset('EuroSAT', 'data/eurosat', 10),
    'ucf101': Dataset('UCF101', 'data/ucf101', 101),
}
#: Test-only datasets: the domain-generalisation targets.
TEST_DATASETS = {
    'imagenet-v2': Dataset('ImageNetV2', 'data/imagenetv2', 1000),
    'imagenet-sketch': Dataset('ImageNetSketch', 'data/imagenet-sketch', 1000),
    'imagenet-a': Dataset('ImageNetA', 'data/imagenet-adversarial', 200),
    'imagenet-r': Dataset('ImageNetR', 'data/imagenet-rendition', 200),
}
XD_TARGETS = tuple(d for d in DATASETS if d != 'imagenet')
DG_TARGETS = tuple(TEST_DATASETS)
#: ``--backbone`` names (as in config names) and their open_clip archs.
BACKBONES = {
    'resnet50': 'RN50',
    'resnet101': 'RN101',
    'vit-base-p32': 'ViT-B-32',
    'vit-base-p16': 'ViT-B-16',
}
SHOTS = (1, 2, 4, 8, 16)


def coop_epochs(dataset: str, shots: int) -> int:
    """CoOp's epochs (COOP.md): ImageNet 50, else 50/100/100/200/200 for
    1/2/4/8/16 shots. Base-to-new (16 shots) is the original's 200-epoch
    ``vit_b16_ctxv1``, 50 for ImageNet."""
    if dataset == 'imagenet':
        return 50
    if shots not in (1, 2, 4, 8, 16):
        raise ValueError(f'CoOp has epochs for 1, 2, 4, 8 and 16 shots, '
                         f'got {shots}; set train_cfg.max_epochs, '
                         'train_cfg.val_interval and param_scheduler.T_max '
                         'with --cfg-options')
    return {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}[shots]


def cocoop_epochs(dataset: str, shots: int) -> int:
    """CoCoOp's paper config: 10 epochs everywhere."""
    return 10


def kgcoop_epochs(dataset: str, shots: int) -> int:
    """KgCoOp's vit_b16_ep100_ctxv1: 100 epochs everywhere (its few-shot
    script uses the same config)."""
    return 100


def prograd_epochs(dataset: str, shots: int) -> int:
    """ProGrad's configs by shots (scripts/prograd.sh): rn50_ep50 for 1
    shot, rn50_ep100 for 2 and 4 (base-to-new too), rn50 (200) for 8 and
    16; ImageNet 50 (its README). CoOp's rule."""
    return coop_epochs(dataset, shots)


def prograd_options(dataset: str, shots: int) -> Dict[str, Any]:
    """ProGrad's README: λ 0.8 for Flowers102, DTD and EuroSAT at 8 and
    16 shots (1.0, the config's, elsewhere)."""
    if dataset in ('oxford-flowers', 'dtd', 'eurosat') and shots in (8, 16):
        return {'optim_wrapper.lambda_': 0.8}
    return {}


def tip_adapter_f_epochs(dataset: str, shots: int) -> int:
    """Tip-Adapter-F's configs/<dataset>.yaml: 20 epochs, EuroSAT 100."""
    return 100 if dataset == 'eurosat' else 20


def training_free_epochs(dataset: str, shots: int) -> int:
    """A training-free method: fitted before one epoch without iterations
    (``AdapterTrainLoop(max_epochs=0)``, checkpoint ``epoch_1.pth``)."""
    return 0


#: Tip-Adapter's configs/<dataset>.yaml: search_scale [beta_max,
#: alpha_max] and init_alpha (init_beta is 1 everywhere).
TIP_ADAPTER_SETTINGS = {
    'imagenet': (7, 3, 1.17),
    'caltech101': (12, 5, 3.0),
    'dtd': (13, 13, 2.0),
    'eurosat': (12, 10, 2.0),
    'fgvc-aircraft': (30, 30, 5.0),
    'food101': (10, 10, 1.17),
    'oxford-flowers': (50, 50, 10.0),
    'oxford-pets': (7, 3, 1.17),
    'stanford-cars': (20, 10, 3.0),
    'sun397': (12, 10, 1.17),
    'ucf101': (7, 3, 3.0),
}


def tip_adapter_options(dataset: str, shots: int) -> Dict[str, Any]:
    """Tip-Adapter's per-dataset settings: its initial alpha, its search
    grid on the val features, the dataset's template (ImageNet: the 7
    templates; no val split, so no search: the original searched on the
    test set). A dataset of one's own keeps the config's."""
    if dataset not in TIP_ADAPTER_SETTINGS:
        return {}
    beta_max, alpha_max, alpha = TIP_ADAPTER_SETTINGS[dataset]
    options = {'model.adapter.alpha': alpha}
    if dataset == 'imagenet':
        options.update({
            'model.text.templates': 'imagenet-7',
            'model.adapter.search': None,
            'train_cfg.search_split': 'train',
        })
    else:
        options.update({
            'model.text.templates': DATASETS[dataset].type,
            'model.adapter.search.alpha_max': float(alpha_max),
            'model.adapter.search.alpha_steps': 20,
            'model.adapter.search.beta_max': float(beta_max),
            'model.adapter.search.beta_steps': 200,
            'train_cfg.search_split': 'val',
        })
    return options


def tip_adapter_free_options(dataset: str, shots: int) -> Dict[str, Any]:
    """Training-free Tip-Adapter: Tip-Adapter-F's settings, keys frozen."""
    return {
        **tip_adapter_options(dataset, shots), 'model.adapter.finetune': False
    }


def linear_probe_options(dataset: str, shots: int) -> Dict[str, Any]:
    """The linear probe chooses C on the val features; ImageNet has no
    held-out split (CoOp's val split is its test set, where the original
    chooses C): there, on the training features."""
    split = 'train' if dataset == 'imagenet' else 'val'
    return {
        'model.adapter.search_split': split,
        'train_cfg.search_split': split
    }


def text_template_options(dataset: str,
                          shots: int,
                          imagenet: str = 'ImageNet') -> Dict[str, Any]:
    """The dataset's hand-written template for the text features (a
    dataset of one's own keeps the config's), and the split a method may
    choose on: val, or the training set for ImageNet (no held-out split)."""
    if dataset not in DATASETS:
        return {}
    return {
        'model.text.templates':
        imagenet if dataset == 'imagenet' else DATASETS[dataset].type,
        'train_cfg.search_split':
        'train' if dataset == 'imagenet' else 'val'
    }


def lpp_options(dataset: str, shots: int) -> Dict[str, Any]:
    """LP++'s text features: Tip-Adapter's templates (ImageNet: the 7
    templates); its epoch is chosen on the val features (ImageNet: the
    last epoch)."""
    return text_template_options(dataset, shots, imagenet='imagenet-7')


def maple_epochs(dataset: str, shots: int) -> int:
    """MaPLe's and IVLP's vit_b16_c2_ep5_batch4_*: 5 epochs everywhere."""
    return 5


def promptsrc_epochs(dataset: str, shots: int) -> int:
    """PromptSRC's vit_b16_c2_ep20_batch4_4+4ctx: 20 epochs everywhere (its
    Gaussian prompt aggregation, in the configs' custom_hooks, is set for
    them)."""
    return 20


#: Each method's number of epochs as a function of (dataset, shots).
EPOCHS = dict(
    coop=coop_epochs,
    cocoop=cocoop_epochs,
    kgcoop=kgcoop_epochs,
    prograd=prograd_epochs,
    maple=maple_epochs,
    ivlp=maple_epochs,
    promptsrc=promptsrc_epochs,
    lpp=training_free_epochs,
    **{
        'tip-adapter-f': tip_adapter_f_epochs,
        'tip-adapter': training_free_epochs,
        'linear-probe': training_free_epochs,
        # the CoOp trainer's epochs, which CLIP-Adapter was written for
        'clip-adapter': coop_epochs
    })
#: Methods' own settings as a function of (dataset, shots).
METHOD_OPTIONS = {
    'prograd': prograd_options,
    'tip-adapter-f': tip_adapter_options,
    'tip-adapter': tip_adapter_free_options,
    'linear-probe': linear_probe_options,
    'lpp': lpp_options,
    'clip-adapter': text_template_options
}
#: Methods whose head takes the teacher's hand-written prompt from the
#: dataset trained on (``model.head.templates``: the dataset's name, looked
#: up in the method's own template table).
TEACHER_TEMPLATE_METHODS = ('kgcoop', 'prograd')


@dataclass(frozen=True)
class Protocol:
    """What a protocol trains and tests.

    Args:
        configs (dict): ``{method: (config, algorithm)}``: the model-zoo
            config every run starts from (relative to ``configs/``) and the
            algorithm part of the run names.
        data (str): The data part of the run names, formatted with
            ``shots`` and ``dataset``.
        datasets (tuple): The datasets trained on (by default).
        shots (tuple): The numbers of shots (by default).
        classes (str): The classes trained on: 'all' or 'base' (then the
            same checkpoint is also tested on the new classes).
        targets (tuple): Datasets the checkpoint is also tested on.
        method_shots (dict): ``{method: shots}`` where a method's own
            protocol uses other shots (ProGrad's base-to-new: 4).
    """
    configs: Dict[str, Tuple[str, str]]
    data: str
    datasets: Tuple[str, ...] = tuple(DATASETS)
    shots: Tuple[int, ...] = (16, )
    classes: str = 'all'
    targets: Tuple[str, ...] = ()
    method_shots: Dict[str, Tuple[int, ...]] = field(default_factory=dict)


_TRANSFER = dict(
    coop=('coop/coop-ctxinit_vit-base-p16_clip-openai_1xb32-ep50_'
          '16shot-imagenet.py', 'coop-ctxinit'),
    cocoop=('cocoop/cocoop_vit-base-p16_clip-openai_1xb1-ep10_'
            '16shot-imagenet.py', 'cocoop'))
_TIP_CONFIG = ('tip_adapter/tip-adapter-f_resnet50_clip-openai_1xb256-ep20_'
               '16shot-caltech101.py')
PROTOCOLS = {
    # CoOp's few-shot curves (RN50 in the paper); COOP.md's example config.
    'fewshot':
    Protocol(
        configs=dict(
            coop=('coop/coop_resnet50_clip-openai_1xb32-ep200_'
                  '16shot-caltech101.py', 'coop'),
            prograd=('prograd/prograd_resnet50_clip-openai_1xb32-ep100_'
                     'base2new-4shot-oxford-pets.py', 'prograd'),
            # Tip-Adapter's own setting (RN50, 10 cached views); the
            # training-free method from the same config, keys frozen.
            **{
                'tip-adapter-f': (_TIP_CONFIG, 'tip-adapter-f'),
                'tip-adapter': (_TIP_CONFIG, 'tip-adapter'),
                # the CoOp paper's linear probe (the entry config: ViT-B/16,
                # OxfordPets; --backbone resnet50 for the paper's), LP++'s
                # own setting (RN50, 4 shots), CLIP-Adapter on CoOp's
                # trainer settings
                'linear-probe': ('linear-probe_vit-b16.py', 'linear-probe'),
                'clip-adapter':
                ('clip_adapter/clip-adapter_resnet50_clip-openai_1xb32-'
                 'ep200_16shot-caltech101.py', 'clip-adapter')
            },
            lpp=('lpp/lpp_resnet50_clip-openai_4shot-oxford-pets.py', 'lpp')),
        data='{shots}shot-{dataset}',
        shots=SHOTS),
    # CoCoOp Table 1, with CoOp as the CoCoOp paper runs it (ctxv1).
    'base2new':
    Protocol(
        configs=dict(
            coop=('coop/coop-ctxinit_vit-base-p16_clip-openai_1xb32-ep200_'
                  'base2new-16shot-oxford-pets.py', 'coop-ctxinit'),
            cocoop=('cocoop/cocoop_vit-base-p16_clip-openai_1xb1-ep10_'
                    'base2new-16shot-oxford-pets.py', 'cocoop'),
            kgcoop=('kgcoop/kgcoop_vit-base-p16_clip-openai_1xb128-ep100_'
                    'base2new-16shot-oxford-pets.py', 'kgcoop'),
            # ProGrad's own base-to-new table: RN50, 4 shots.
            prograd=('prograd/prograd_resnet50_clip-openai_1xb32-ep100_'
                     'base2new-4shot-oxford-pets.py', 'prograd'),
            maple=('maple/maple_vit-base-p16_clip-openai_1xb4-ep5_'
                   'base2new-16shot-oxford-pets.py', 'maple'),
            ivlp=('ivlp/ivlp_vit-base-p16_clip-openai_1xb4-ep5_'
                  'base2new-16shot-oxford-pets.py', 'ivlp'),
            promptsrc=('promptsrc/promptsrc_vit-base-p16_clip-openai_1xb4-'
                       'ep20_base2new-16shot-oxford-pets.py', 'promptsrc')),
        data='base2new-{shots}shot-{dataset}',
        classes='base',
        method_shots=dict(prograd=(4, ))),
    # CoCoOp Tables 2 and 3: ImageNet (all classes) to other datasets.
    'cross-dataset':
    Protocol(
        configs=_TRANSFER,
        data='{shots}shot-{dataset}',
        datasets=('imagenet', ),
        targets=XD_TARGETS),
    'dg':
    Protocol(
        configs=_TRANSFER,
        data='{shots}shot-{dataset}',
        datasets=('imagenet', ),
        targets=DG_TARGETS),
}
METHODS = ('zeroshot', 'coop', 'cocoop', 'kgcoop', 'prograd', 'maple', 'ivlp',
           'promptsrc', 'tip-adapter-f', 'tip-adapter', 'linear-probe', 'lpp',
           'clip-adapter')
#: Protocols that train the same model: a sweep reuses the other's.
SAME_TRAINING = {'cross-dataset': 'dg', 'dg': 'cross-dataset'}


@dataclass
class Step:
    """One subprocess of a job: a training or a test run."""
    kind: str  # 'train' or 'test'
    config: str
    work_dir: str
    options: List[str]  # --cfg-options
    checkpoint: Optional[str] = None  # test: the checkpoint to evaluate
    out: Optional[str] = None  # test: the metrics file
    resume: bool = False  # train: pass --resume
    note: str = ''


@dataclass
class Job:
    """Training once, then testing that model in one or more folders."""
    name: str
    steps: List[Step] = field(default_factory=list)
    #: ``{folder: settings}`` of every folder of the job (sweep.json).
    records: Dict[str, dict] = field(default_factory=dict)


def parse_cfg_options(options: Optional[List[str]]) -> dict:
    """``key=value`` strings to a dict, as train.py and test.py read them."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    if not options:
        return {}
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def format_options(options: Dict[str, Any]) -> List[str]:
    """``{key: value}`` to the ``key=value`` strings of ``--cfg-options``.

    Examples:
        >>> format_options({'a.b': 1, 'c': None, 'd': False, 'e': 'new'})
        ['a.b=1', 'c=None', 'd=False', 'e=new']
    """
    return [f'{key}={value}' for key, value in options.items()]


def subsample_size(dataset: Dataset, classes: str) -> int:
    """The number of classes of ``classes`` ('all', 'base' or 'new'): the
    first ``ceil(n / 2)`` sorted labels are the base classes."""
    base = (dataset.num_classes + 1) // 2
    return dict(
        all=dataset.num_classes, base=base,
        new=dataset.num_classes - base)[classes]


def dataset_key(loader: str, on_features: bool = False) -> str:
    """Where ``<loader>_dataloader``'s image dataset is: its ``dataset``,
    or the image dataset a ``CachedFeatureDataset`` wraps (methods on
    cached features: Tip-Adapter, the linear probes)."""
    nested = 'dataset.' if on_features else ''
    return f'{loader}_dataloader.dataset.{nested}'


def dataset_options(loader: str,
                    dataset: Dataset,
                    classes: str,
                    on_features: bool = False) -> Dict[str, Any]:
    """The options that point ``<loader>_dataloader`` at ``dataset``."""
    prefix = dataset_key(loader, on_features)
    return {
        prefix + 'type': dataset.type,
        prefix + 'data_root': dataset.data_root,
        prefix + 'subsample_classes': classes,
    }


def has_checkpoints(work_dir: str) -> bool:
    """Whether a training run left checkpoints to resume from (train.py
    refuses to start afresh over them)."""
    return osp.isfile(osp.join(work_dir, 'last_checkpoint')) or any(
        glob.glob(osp.join(work_dir, pattern))
        for pattern in ('epoch_*.pth', 'iter_*.pth'))


def final_checkpoint(cfg) -> str:
    """The file name of the last checkpoint a config's training writes."""
    train_cfg = cfg.get('train_cfg') or {}
    if train_cfg.get('max_epochs') is not None:
        # AdapterTrainLoop(max_epochs=0) fits in one epoch without
        # iterations: epoch_1.pth
        return f'epoch_{max(train_cfg["max_epochs"], 1)}.pth'
    if train_cfg.get('max_iters') is not None:
        return f'iter_{train_cfg["max_iters"]}.pth'
    raise ValueError('train_cfg has neither max_epochs nor max_iters')


@dataclass
class Run:
    """The settings of one training run (all seeds but the seed)."""
    dataset: str
    has_val: bool
    shots: int
    backbone: str  # the name part, e.g. 'resnet50'
    name: str  # the run name
    options: Dict[str, Any]  # without the seeds
    checkpoint: str  # the final checkpoint's file name
    record: dict  # sweep.json, without the seed and the evaluated data


class Planner:
    """Turn the command line into jobs, each a list of steps.

    Args:
        args (argparse.Namespace): The parsed command line.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.protocol = PROTOCOLS[args.protocol]
        self.config = args.config
        self.algorithm = args.algorithm
        if self.config is None:
            config, algorithm = self.protocol.configs[args.method]
            self.config = osp.join(ROOT, 'configs', config)
            self.algorithm = self.algorithm or algorithm
        self.algorithm = self.algorithm or args.method
        self.user_options = parse_cfg_options(args.cfg_options)
        self._cfg = None
        #: The method trains nothing (zero-shot CLIP): its runs are tests.
        self.test_only = args.method in TEST_ONLY_METHODS
        #: The start config trains on cached features: its loaders' image
        #: datasets are wrapped in a CachedFeatureDataset.
        train = self._merged({}).get('train_dataloader')
        self.on_features = train is not None and train.dataset.get(
            'type') == 'CachedFeatureDataset'

    def key(self, loader: str) -> str:
        """The option prefix of ``loader``'s image dataset."""
        return dataset_key(loader, self.on_features)

    def _merged(self, options: Dict[str, Any]):
        """The start config with ``options`` and the user's options."""
        from mmengine.config import Config
        if self._cfg is None:
            self._cfg = Config.fromfile(
                self.config, import_custom_modules=False)
        cfg = copy.deepcopy(self._cfg)
        cfg.merge_from_dict({**options, **self.user_options})
        return cfg

    def run(self, dataset_name: str, shots: int,
            backbone: Optional[str]) -> Run:
        """The options, name and record of one training run.

        Raises:
            ValueError: The options do not fit the config, e.g. a dataset
                with a val split on a config without a val loader.
        """
        args, protocol = self.args, self.protocol
        classes = protocol.classes
        if self.test_only:
            return self._test_only_run(dataset_name, shots, backbone)
        if args.config_dataset is None:
            dataset = DATASETS[dataset_name]
            has_val = dataset.has_val
            options = {
                'dataset_type': dataset.type,
                'data_root': dataset.data_root,
            }
            nested = self.on_features
            options.update(dataset_options('train', dataset, classes, nested))
            if has_val:
                options.update(
                    dataset_options('val', dataset, classes, nested))
            else:
                options.update(
                    val_dataloader=None, val_evaluator=None, val_cfg=None)
            options.update(dataset_options('test', dataset, classes, nested))
            if args.method in TEACHER_TEMPLATE_METHODS:
                options['model.head.templates'] = dataset.type
        else:  # the config's own dataset, as it is
            dataset = None
            has_val = self._merged({}).get('val_dataloader') is not None
            options = {
                self.key(loader) + 'subsample_classes': classes
                for loader in ('train', 'val', 'test')
                if has_val or loader != 'val'
            }
        options[self.key('train') + 'num_shots'] = shots
        if has_val:
            options[self.key('val') + 'num_shots'] = shots
        # The demo keeps its config's epochs, unless the method trains none.
        if not args.demo or EPOCHS[args.method] is training_free_epochs:
            epochs = EPOCHS[args.method](dataset_name, shots)
            # 0: a training-free method, fitted in one epoch without
            # iterations
            options.update({
                'train_cfg.max_epochs': epochs,
                'train_cfg.val_interval': max(epochs, 1),
            })
            # a fitted method's config may have no schedule at all
            if self._merged({}).get('param_scheduler') is not None:
                options['param_scheduler.T_max'] = max(epochs, 1)
        if args.method in METHOD_OPTIONS:
            options.update(METHOD_OPTIONS[args.method](dataset_name, shots))
        if backbone is not None:
            options['model.clip.arch'] = BACKBONES[backbone]
        try:
            cfg = self._merged(options)
            if dataset is not None and not self.on_features:
                # The original's drop_last = len(dataset) >= batch_size
                # (the methods on features keep their config's).
                n_train = subsample_size(dataset, classes) * shots
                options['train_dataloader.drop_last'] = (
                    n_train >= cfg.train_dataloader.batch_size)
                cfg = self._merged(options)
            batch = cfg.train_dataloader.batch_size
            epochs = cfg.train_cfg.max_epochs
            arch = cfg.model.clip.arch
            checkpoint = final_checkpoint(cfg)
        except (TypeError, KeyError, AttributeError, ValueError) as err:
            raise ValueError(f'{self.config}: the {args.protocol} settings of '
                             f'{dataset_name!r} do not fit this config: '
                             f'{type(err).__name__}: {err}') from err
        if backbone is None:
            names = {a: name for name, a in BACKBONES.items()}
            backbone = names.get(arch, arch.lower())
        data = protocol.data.format(shots=shots, dataset=dataset_name)
        # A training-free method has no schedule in its name, as its
        # model-zoo configs.
        schedule = f'1xb{batch}-ep{epochs}_' if epochs else ''
        name = f'{self.algorithm}_{backbone}_clip-openai_{schedule}{data}'
        record = dict(
            protocol=args.protocol,
            method=args.method,
            algorithm=self.algorithm,
            backbone=backbone,
            arch=arch,
            trained_on=dataset_name,
            shots=shots,
            epochs=epochs,
            batch_size=batch,
            run=name,
            config=self.config)
        return Run(dataset_name, has_val, shots, backbone, name, options,
                   checkpoint, record)

    def _test_only_run(self, dataset_name: str, shots: int,
                       backbone: Optional[str]) -> Run:
        """A method that trains nothing: its test of the dataset (the same
        model for every shot count, a point of the curves each)."""
        args, classes = self.args, self.protocol.classes
        if args.config_dataset is None:
            dataset = DATASETS[dataset_name]
            options = dataset_options('test', dataset, classes)
            options['model.head.templates'] = dataset.type
        else:
            options = {self.key('test') + 'subsample_classes': classes}
        if backbone is not None:
            options['model.clip.arch'] = BACKBONES[backbone]
        try:
            arch = self._merged(options).model.clip.arch
        except (TypeError, KeyError, AttributeError, ValueError) as err:
            raise ValueError(f'{self.config}: the {args.protocol} settings of '
                             f'{dataset_name!r} do not fit this config: '
                             f'{type(err).__name__}: {err}') from err
        if backbone is None:
            names = {a: name for name, a in BACKBONES.items()}
            backbone = names.get(arch, arch.lower())
        data = self.protocol.data.format(shots=shots, dataset=dataset_name)
        name = f'{self.algorithm}_{backbone}_clip-openai_{data}'
        record = dict(
            protocol=args.protocol,
            method=args.method,
            algorithm=self.algorithm,
            backbone=backbone,
            arch=arch,
            trained_on=None,
            shots=shots,
            epochs=0,
            batch_size=None,
            run=name,
            config=self.config)
        return Run(dataset_name, False, shots, backbone, name, options, None,
                   record)

    def folder(self,
               dataset: str,
               name: str,
               seed: int,
               protocol: Optional[str] = None) -> str:
        return osp.join(self.args.work_dir, protocol or self.args.protocol,
                        dataset, name, f'seed{seed}')

    def plan(self) -> List[Job]:
        """All jobs of the sweep, in order.

        Raises:
            ValueError: A setting does not fit the config (nothing has run
                then).
        """
        args, protocol = self.args, self.protocol
        if protocol.targets:
            datasets = protocol.datasets
            targets = args.datasets or protocol.targets
        else:
            datasets = args.datasets or protocol.datasets
            targets = ()
        if args.config_dataset is not None:
            datasets = [args.config_dataset]
        shots = args.shots or protocol.method_shots.get(
            args.method, protocol.shots)
        jobs = []
        for backbone in args.backbone or [None]:
            for dataset in datasets:
                for k in shots:
                    run = self.run(dataset, k, backbone)
                    for seed in args.seeds:
                        jobs.append(self._job(run, seed, targets))
        return jobs

    def _job(self, run: Run, seed: int, targets: Sequence[str]) -> Job:
        """Train ``run`` for ``seed`` unless done, then each test whose
        metrics are missing."""
        train_dir = self.folder(run.dataset, run.name, seed)
        seeds = {'randomness.seed': seed}
        if not self.test_only:
            seeds[self.key('train') + 'seed'] = seed
        if run.has_val:
            seeds[self.key('val') + 'seed'] = seed
        options = {**seeds, **run.options}
        record = dict(run.record, seed=seed)
        # (folder, extra test options, evaluated dataset, classes)
        tests = [(train_dir, {}, run.dataset, self.protocol.classes)]
        if self.protocol.classes == 'base':
            folder = self.folder(run.dataset, f'{run.name}_new', seed)
            new = {self.key('test') + 'subsample_classes': 'new'}
            tests.append((folder, new, run.dataset, 'new'))
        for target in targets:
            dataset = {**DATASETS, **TEST_DATASETS}[target]
            folder = self.folder(target, f'{run.name}-to-{target}', seed)
            extra = dataset_options('test', dataset, 'all', self.on_features)
            tests.append((folder, extra, target, 'all'))
        job = Job(f'{self.args.protocol}/{run.dataset}/{run.name}/'
                  f'seed{seed}')
        for folder, extra, dataset, classes in tests:
            test_options = {**options, **extra}
            job.records[folder] = dict(
                record,
                dataset=dataset,
                classes=classes,
                cfg_options=self._options(test_options))
        outs = [osp.join(folder, METRICS_FILE) for folder, *_ in tests]
        if all(osp.isfile(o) for o in outs):
            return job  # nothing left to do
        # A test-only method: no checkpoint, no training.
        checkpoint = None if self.test_only else osp.join(
            train_dir, run.checkpoint)
        # cross-dataset and dg train the same model: reuse the other's.
        other = SAME_TRAINING.get(self.args.protocol)
        reused = None
        if other is not None and checkpoint and not osp.isfile(checkpoint):
            candidate = osp.join(
                self.folder(run.dataset, run.name, seed, other),
                run.checkpoint)
            if osp.isfile(candidate):
                reused = checkpoint = candidate
        if checkpoint and not osp.isfile(checkpoint):
            resume = has_checkpoints(train_dir)
            job.steps.append(
                Step(
                    'train',
                    self.config,
                    train_dir,
                    self._options(options),
                    resume=resume,
                    note='resume' if resume else ''))
        for (folder, *_), out in zip(tests, outs):
            if not osp.isfile(out):
                job.steps.append(
                    Step(
                        'test',
                        self.config,
                        folder,
                        job.records[folder]['cfg_options'],
                        checkpoint=checkpoint,
                        out=out,
                        note=f'model of {osp.dirname(reused)}'
                        if reused else ''))
        return job

    def _options(self, options: Dict[str, Any]) -> List[str]:
        # The user's options last: they override the sweep's.
        return format_options(options) + list(self.args.cfg_options or [])


def step_command(step: Step) -> List[str]:
    """The command line of a step.

    Args:
        step (Step): The step.

    Returns:
        list[str]: The argv, starting with the Python interpreter.
    """
    if step.kind == 'train':
        cmd = [sys.executable, TRAIN, step.config, '--work-dir', step.work_dir]
        if step.resume:
            cmd.append('--resume')
    else:
        # a test-only method (zero-shot CLIP) has no checkpoint
        checkpoint = [step.checkpoint] if step.checkpoint else []
        cmd = [sys.executable, TEST, step.config, *checkpoint] + [
            '--work-dir', step.work_dir, '--out', step.out, '--out-item',
            'metrics', '--no-progress'
        ]
    if step.options:
        cmd += ['--cfg-options', *step.options]
    return cmd


def write_records(job: Job) -> None:
    """Write the ``sweep.json`` of the job's folders: those that will run
    get the current settings; finished ones keep theirs, or get them if
    they have none (folders of an earlier version of this tool)."""
    running = {step.work_dir for step in job.steps}
    for folder, record in job.records.items():
        path = osp.join(folder, RECORD_FILE)
        if folder in running or (osp.isdir(folder) and not osp.isfile(path)):
            os.makedirs(folder, exist_ok=True)
            with open(path, 'w') as f:
                json.dump(record, f, indent=2)
                f.write('\n')


def run_step(step: Step, cmd: List[str]) -> Tuple[bool, str]:
    """Run a step, its output going to ``<work_dir>/<kind>.out``.

    Returns:
        tuple[bool, str]: Whether it succeeded, and a reason if not.
    """
    os.makedirs(step.work_dir, exist_ok=True)
    log = osp.join(step.work_dir, f'{step.kind}.out')
    if step.kind == 'test' and step.checkpoint and not osp.isfile(
            step.checkpoint):
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


def prepare_demo(data_root: str) -> None:
    """Make the demo's data (images, split file, tiny CLIP) if missing."""
    from mmprompt.demo import prepare_demo_data
    prepare_demo_data(data_root)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line of ``tools/run_sweep.py``."""
    parser = argparse.ArgumentParser(
        description='Run a CoOp/CoCoOp/KgCoOp protocol over datasets, seeds, '
        'shots '
        'and backbones with tools/train.py and tools/test.py.')
    parser.add_argument('protocol', choices=tuple(PROTOCOLS))
    parser.add_argument(
        '--method',
        nargs='+',
        choices=METHODS,
        help='the method, which picks the protocol\'s config and the '
        'schedule rule (default: coop for fewshot, cocoop otherwise); '
        'several run one after the other, each from its own config (e.g. '
        'fewshot --demo --method zeroshot linear-probe tip-adapter-f coop '
        'cocoop)')
    parser.add_argument(
        '--config',
        help='start every run from this config instead of the protocol\'s '
        'model-zoo config; set --algorithm to keep its runs apart')
    parser.add_argument(
        '--algorithm',
        help='the algorithm part of the run names (default: the '
        'protocol\'s, e.g. coop-ctxinit for CoOp base2new; the method with '
        '--config). Give a name of its own to a variant set by --config '
        'or --cfg-options, or its runs share folders with the default\'s')
    parser.add_argument(
        '--config-dataset',
        metavar='NAME',
        help='with --config: train on the config\'s own dataset, as it is '
        '(no dataset options, no drop_last rule), naming its folders NAME; '
        'for a dataset of your own. The shots, seeds, classes and epochs '
        'are still set')
    parser.add_argument(
        '--demo',
        action='store_true',
        help='sweep the embedded demo: its config for --method, its data '
        f'(made under {DEMO_DATA} if missing), its 10 epochs, folders named '
        f'{DEMO_DATASET!r}; fewshot and base2new only')
    parser.add_argument(
        '--backbone',
        nargs='+',
        choices=tuple(BACKBONES),
        help='set model.clip.arch (default: the config\'s own backbone, '
        'RN50 for fewshot and ViT-B/16 otherwise)')
    parser.add_argument(
        '--datasets',
        nargs='+',
        help='datasets (fewshot, base2new; default: all 11) or targets '
        '(cross-dataset: the 10 others, dg: the 4 ImageNet variants)')
    parser.add_argument(
        '--shots',
        nargs='+',
        type=int,
        help='fewshot only (default: 1 2 4 8 16)')
    parser.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        default=[1, 2, 3],
        help='run and few-shot seeds (default: 1 2 3)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs',
        help='root of the run folders (default: work_dirs)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        help='passed to every train.py and test.py run after the sweep\'s '
        'own, e.g. model.clip.pretrained=/data/clip/ViT-B-16.pt')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print the commands without running them')
    args = parser.parse_args(argv)
    methods = args.method or [
        'coop' if args.protocol == 'fewshot' else 'cocoop'
    ]
    if len(set(methods)) != len(methods):
        parser.error(f'--method names a method twice: {methods}')
    if len(methods) > 1 and (args.config or args.algorithm):
        parser.error('--config and --algorithm set the runs of one method; '
                     f'give one --method with them, not {len(methods)}')
    runs = [_method_args(parser, args, method) for method in methods]
    args = runs[0]
    #: One namespace per method, each as a single --method would give it.
    args.runs = runs
    return args


def _method_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 method: str) -> argparse.Namespace:
    """``args`` for one method: its demo config, checked."""
    args = copy.copy(args)
    args.method = method
    protocol = PROTOCOLS[args.protocol]
    if args.demo:
        if args.protocol not in DEMO_PROTOCOLS:
            parser.error(f'--demo runs {" and ".join(DEMO_PROTOCOLS)}; '
                         f'{args.protocol} needs ImageNet')
        given = [
            option
            for option, value in (('--config', args.config),
                                  ('--config-dataset', args.config_dataset),
                                  ('--datasets', args.datasets),
                                  ('--backbone', args.backbone)) if value
        ]
        if given:
            parser.error(f'--demo sets the config, the dataset and the '
                         f'backbone; leave out {", ".join(given)}')
        args.config = DEMO_CONFIGS.get(
            args.method) or DEMO_CONFIG.format(method=args.method)
        args.config_dataset = DEMO_DATASET
    if args.method in FEWSHOT_ONLY and args.protocol != 'fewshot':
        parser.error(f'{args.method} runs the fewshot protocol only: its '
                     'cache holds images of the training classes and cannot '
                     'score others (Tip-Adapter issue #10)')
    if args.config is None and args.method not in protocol.configs:
        parser.error(f'{args.protocol} has no {args.method} config; '
                     f'methods: {", ".join(protocol.configs)}; or give '
                     'one with --config')
    if args.config is not None and not osp.isfile(args.config):
        parser.error(f'--config {args.config!r}: no such file')
    if args.config_dataset is not None and args.config is None:
        parser.error('--config-dataset needs --config')
    if args.config_dataset is not None and args.datasets and \
            not protocol.targets:
        parser.error('--config-dataset and --datasets both name the '
                     'datasets trained on; give one')
    if protocol.targets:
        allowed = [
            name for name in (*DATASETS, *TEST_DATASETS)
            if name not in protocol.datasets
        ]
    else:
        allowed = list(DATASETS)
    for name in args.datasets or ():
        if name not in allowed:
            what = 'target' if protocol.targets else 'dataset'
            parser.error(f'--datasets: unknown {args.protocol} {what} '
                         f'{name!r}; allowed: {", ".join(allowed)}')
    if args.shots and args.protocol != 'fewshot':
        # 16, and a method's own (ProGrad's base-to-new: 4).
        allowed = sorted({16, *protocol.method_shots.get(args.method, ())})
        if not set(args.shots) <= set(allowed):
            parser.error(
                f'--shots is for the fewshot protocol; {args.protocol} '
                f'always uses {" or ".join(map(str, allowed))} shots')
    return args


def main(argv=None) -> int:
    """Entry point of ``tools/run_sweep.py``.

    Returns:
        int: 0 if every run succeeded (or was done already), else 1; 2 if
        the sweep could not be planned.
    """
    args = parse_args(argv)
    if args.demo and not args.dry_run:
        prepare_demo(DEMO_DATA)
    try:
        jobs = [job for run in args.runs for job in Planner(run).plan()]
    except (ValueError, FileNotFoundError) as err:
        print(f'run_sweep.py: error: {err}', file=sys.stderr)
        return 2
    done = sum(1 for job in jobs if not job.steps)
    failed, succeeded = [], 0
    todo = [job for job in jobs if job.steps]
    print(f'{len(jobs)} jobs: {done} done already, {len(todo)} to run')
    for job in jobs:
        if not args.dry_run:
            write_records(job)
        if not job.steps:
            continue
        print(f'== {job.name}')
        for step in job.steps:
            cmd = step_command(step)
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
