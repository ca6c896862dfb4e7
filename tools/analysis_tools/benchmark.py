# Copyright (c) mmprompt contributors. All rights reserved.
"""Speed and peak memory of mmprompt's text encoder against the original
computation, on one model.

The config's ``PromptClassifier`` (``CoOpHead`` or ``CoCoOpHead``) is built
once; its two paths are two settings of its head, swapped in between steps
(same frozen CLIP, same prompt learner, same parameters):

* **mmprompt**: the config's text encoder (by default
  ``PrefixCachedTextEncoder``) and, for CoOp, the evaluation cache of text
  features;
* **straightforward**, the original CoOp/CoCoOp computation:
  ``PlainTextEncoder(cut_after_eot=False, text_chunk_size=K)`` (every prompt
  materialised at all 77 positions, about one image's K prompts per text
  tower call, as the original's loop over images) and, for CoOp,
  ``cache_text_features=False`` (text features recomputed every batch).

Before anything is timed the two paths' logits (and, for training, loss
and gradients) must agree. The paths are timed interleaved in one process,
one step of each per round; the peak memory of one step of each path is
measured in a fresh subprocess. Weights are random unless ``--pretrained``.

For ProGrad (``ProGradHead``) the straightforward path is also the
original's teacher and update: a second CLIP in fp32 (a copy of the
model's) whose image tower runs every step and whose text features
(``TextFeatureBank`` on the copy) are computed once, and two full backward
passes (KL then CE, the gradients cloned in between) before
``prograd_project`` and SGD; mmprompt's path is ``ProGradHead``'s teacher
(the same CLIP, the student's image features) and ``ProGradOptimWrapper``.
Both paths must give the same logits, losses and projected gradients.

For MaPLe and PromptSRC (deep prompts in both towers) the straightforward
path runs the deep text prompts in every class's 77-token prompt
(``PlainTextEncoder(cut_after_eot=False)``, the original's per-class copies
and their fp16-rounded gradients); for PromptSRC it also holds the
original's second frozen CLIP (:class:`OriginalZeroShotCLIP`: a copy of the
model's, whose image tower runs every step without prompts and whose text
features of the 60 templates are computed once), where mmprompt's path
runs the one frozen CLIP without prompts. Their gradients agree to the fp16
rounding of the deep prompts' copies (``rtol`` 2^-9: the prefix-cached
encoder rounds a deep text prompt's gradient once per group, the original
once per class).

A preset of ``kind='features'`` times a method on cached CLIP features
(an ``AdapterClassifier``: the linear probe's fit with its C search, an
adapter's fit, training epochs and search) against one training epoch of
CoOp (the ``baseline``) on the same few-shot split (``classes`` ×
``shots`` images) and the same frozen CLIP: the features of the split are
extracted once (timed apart, the one-time cost), then each round times a
CoOp epoch (batches of ``train_batch``: forward, loss, backward, SGD) and
the method on the cached features, interleaved; reported is the speed-up
(CoOp epoch / method) per round.

A preset with a ``baseline`` (or ``--baseline CONFIG``) compares two
*models* instead, e.g. KgCoOp's training step against CoOp's: the config's
model (path ``model``) and the baseline config's (path ``baseline``), built
with the same seed, classes and inputs, timed interleaved in the same way;
their logits (and CE) must agree once the baseline holds the model's learned
state. Reported is the time ratio model / baseline. See
``docs/benchmark.md``.

Examples:
    python tools/analysis_tools/benchmark.py --preset cocoop-train-m4
    python tools/analysis_tools/benchmark.py --preset kgcoop-train
    python tools/analysis_tools/benchmark.py --preset prograd-train
    python tools/analysis_tools/benchmark.py --preset promptsrc-train
    python tools/analysis_tools/benchmark.py --preset linear-probe-fit
    python tools/analysis_tools/benchmark.py --preset tip-adapter-f-train
    python tools/analysis_tools/benchmark.py --preset all --markdown
    python tools/analysis_tools/benchmark.py configs/coop_vit-b16.py \\
        --classes 100 --batch 32 --images 200 --mode test --out res.json
"""
import argparse
import contextlib
import copy
import ctypes
import datetime
import gc
import json
import logging
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence
from unittest import mock

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger, print_log
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from mmprompt.engine import ProGradOptimWrapper, prograd_project
from mmprompt.models import (CoCoOpHead, CoOpHead, PlainTextEncoder,
                             ProGradHead, PromptSRCHead, TextFeatureBank)
from mmprompt.registry import MODELS
from mmprompt.utils import FeatureSet

PROG = 'benchmark.py'
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PATHS = ('mmprompt', 'straightforward')
#: The paths of a comparison of two models (a preset with a ``baseline``).
PAIR_PATHS = ('model', 'baseline')
MODES = ('train', 'test')
# SGD of the original (Dassl's defaults with CoOp's learning rate).
SGD = dict(lr=0.002, momentum=0.9, weight_decay=5e-4)
# How close the two paths must be, relative to the largest value.
RTOL = 1e-4

# The settings of the issue "Fast CoCoOp and CoOp without changing a logit".
# Steps are few: a straightforward CoCoOp step of ViT-B/16 at 50 classes x
# batch 4 takes tens of seconds on a 2-core CPU.
PRESETS: Dict[str, dict] = {
    'cocoop-train-m4':
    dict(
        config='configs/_base_/models/cocoop.py',
        title='CoCoOp ViT-B/16, M=4 "a photo of a"',
        mode='train',
        classes=50,
        train_batch=4,
        warmup=1,
        steps=5,
        speed_target=10.0,
        memory_target=1 / 3),
    'cocoop-train-m16':
    dict(
        config='configs/_base_/models/cocoop.py',
        title='CoCoOp ViT-B/16, M=16 random',
        cfg_options={
            'model.head.prompt_learner.n_ctx': 16,
            'model.head.prompt_learner.ctx_init': ''
        },
        mode='train',
        classes=50,
        train_batch=4,
        warmup=1,
        steps=5,
        speed_target=8.0),
    'cocoop-eval':
    dict(
        config='configs/_base_/models/cocoop.py',
        title='CoCoOp ViT-B/16, M=4 "a photo of a"',
        mode='test',
        classes=50,
        images=20,
        test_batch=20,
        warmup=1,
        steps=2,
        speed_target=5.0),
    'coop-eval-1k':
    dict(
        config='configs/_base_/models/coop.py',
        title='CoOp ViT-B/32, M=16 random',
        cfg_options={'model.clip.arch': 'ViT-B-32'},
        mode='test',
        classes=1000,
        images=200,
        test_batch=100,
        warmup=1,
        steps=1,
        speed_target=4.0),
    # Issue 14: KgCoOp's training step costs CoOp's (its teacher features
    # are computed once, in the warm-up step, not per step). The baseline
    # is CoOp with KgCoOp's prompt, so only the KgCoOp term differs.
    'kgcoop-train':
    dict(
        config='configs/_base_/models/kgcoop.py',
        title='KgCoOp vs CoOp, ViT-B/16, M=4 "a photo of a"',
        baseline=dict(
            config='configs/_base_/models/coop.py',
            cfg_options={
                'model.head.prompt_learner.n_ctx': 4,
                'model.head.prompt_learner.ctx_init': 'a photo of a'
            },
            title='CoOp'),
        mode='train',
        classes=50,
        train_batch=4,
        warmup=2,
        steps=10,
        max_ratio=1.15),
    # Issue 14: ProGrad's training step against the original's computation
    # (77-token prompts, a second fp32 CLIP as teacher, two full backward
    # passes). The teacher's prompt 'a photo of a {}.' initialises the last
    # 4 of the 16 context vectors (the original's CTX_INIT True).
    'prograd-train':
    dict(
        config='configs/_base_/models/prograd.py',
        title='ProGrad ViT-B/16, M=16 from "a photo of a"',
        mode='train',
        classes=50,
        train_batch=4,
        warmup=1,
        steps=5,
        speed_target=3.0),
    # Issue 13: MaPLe's and PromptSRC's training step and evaluation
    # against the originals' computation (deep text prompts in 77-token
    # prompts per class; PromptSRC's second frozen CLIP as the zero-shot
    # teacher). ViT-B/16, random weights, 50 classes, batch 4.
    'maple-train':
    dict(
        config='configs/_base_/models/maple.py',
        title='MaPLe ViT-B/16, 2 tokens, depth 9',
        mode='train',
        classes=50,
        train_batch=4,
        warmup=1,
        steps=5,
        rtol=2**-9,
        speed_target=2.0,
        memory_target=1.0),
    'maple-eval':
    dict(
        config='configs/_base_/models/maple.py',
        title='MaPLe ViT-B/16, 2 tokens, depth 9',
        mode='test',
        classes=50,
        images=20,
        test_batch=4,
        warmup=1,
        steps=2,
        rtol=2**-9),
    'promptsrc-train':
    dict(
        config='configs/_base_/models/promptsrc.py',
        title='PromptSRC ViT-B/16, IVLP 4+4, depth 9',
        mode='train',
        classes=50,
        train_batch=4,
        warmup=1,
        steps=5,
        rtol=2**-9,
        speed_target=2.0,
        memory_target=1.0),
    'promptsrc-eval':
    dict(
        config='configs/_base_/models/promptsrc.py',
        title='PromptSRC ViT-B/16, IVLP 4+4, depth 9',
        mode='test',
        classes=50,
        images=20,
        test_batch=4,
        warmup=1,
        steps=2,
        rtol=2**-9),
    # Issue 15: the CoOp paper's linear probe (scikit-learn, its C search on
    # the val features: 7 + 2 x 8 fits) on cached features of a 16-shot
    # split, against one epoch of CoOp (M=16, batch 32) on the same images
    # with the same frozen CLIP.
    'linear-probe-fit':
    dict(
        kind='features',
        config='configs/_base_/models/lpclip.py',
        title='linear probe (lpclip) fit vs one CoOp epoch, ViT-B/16',
        baseline=dict(config='configs/_base_/models/coop.py', title='CoOp'),
        mode='train',
        classes=10,
        shots=16,
        train_batch=32,
        warmup=0,
        steps=3),
    # Issue 15: Tip-Adapter-F (the cache of 10 augmented views, 20 epochs
    # of AdamW on the keys at batch 256, then the 200 x 20 alpha/beta
    # search on the val features) on cached features of a 16-shot split,
    # against one epoch of CoOp (M=16, batch 32) on the same images with
    # the same frozen CLIP.
    'tip-adapter-f-train':
    dict(
        kind='features',
        config='configs/_base_/models/tip_adapter_f.py',
        title='Tip-Adapter-F (cache, 20 epochs, alpha/beta search) vs one '
        'CoOp epoch, ViT-B/16',
        baseline=dict(config='configs/_base_/models/coop.py', title='CoOp'),
        mode='train',
        classes=10,
        shots=16,
        train_batch=32,
        views=10,
        adapter_epochs=20,
        adapter_batch=256,
        adapter_optimizer=dict(
            type='AdamW', lr=0.001, eps=1e-4, weight_decay=0.01),
        warmup=0,
        steps=3),
}


# ----------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse and validate the command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Images per second and peak memory of training steps '
        "and evaluation of one model, with mmprompt's text encoder and with "
        'the straightforward computation of the original CoOp/CoCoOp.')
    parser.add_argument(
        'config', nargs='?', help='a config of a CoOp or CoCoOp model')
    parser.add_argument(
        '--preset',
        choices=sorted(PRESETS) + ['all'],
        help='a setting of the docs table (fixes config, classes, batch, '
        'images, steps and warm-up; other options still apply)')
    parser.add_argument(
        '--baseline',
        metavar='CONFIG',
        help='compare the config\'s model with this config\'s model (a '
        'CoOp-like head each; same seed, classes and inputs) instead of '
        'two text encoders of one model')
    parser.add_argument(
        '--classes', type=int, help='number of classes K (default: 50)')
    parser.add_argument(
        '--batch',
        type=int,
        help="images per training step and evaluation batch (default: the "
        "config's train / test batch size)")
    parser.add_argument(
        '--images',
        type=int,
        help='images per evaluation (default: one test batch)')
    parser.add_argument('--steps', type=int, help='timed rounds (default: 3)')
    parser.add_argument(
        '--warmup', type=int, help='untimed steps per path (default: 1)')
    parser.add_argument(
        '--mode',
        choices=['train', 'test', 'both'],
        help='what to measure (default: both)')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--amp',
        action='store_true',
        help='time under autocast (bf16 on CPU, fp16 on CUDA); the '
        'agreement check runs without')
    parser.add_argument(
        '--threads', type=int, help='torch CPU threads (default: all cores)')
    parser.add_argument(
        '--pretrained',
        action='store_true',
        help="keep the config's model.clip.pretrained instead of random "
        'weights')
    parser.add_argument(
        '--paths',
        nargs='+',
        choices=PATHS,
        default=list(PATHS),
        help='which paths to time and measure (default: both; the '
        'agreement check always runs both)')
    parser.add_argument(
        '--no-isolate',
        dest='isolate',
        action='store_false',
        help='measure peak memory in this process instead of a fresh '
        'subprocess per path and phase (faster, less reliable)')
    parser.add_argument(
        '--skip-check',
        action='store_true',
        help='do not check that the two paths agree (not recommended)')
    parser.add_argument(
        '--profile',
        metavar='DIR',
        help='write a torch.profiler table of one more step of each path')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. model.clip.arch=ViT-B-32')
    parser.add_argument('--out', help='write the results as json here')
    parser.add_argument(
        '--markdown',
        action='store_true',
        help='progress on stderr, only the markdown tables on stdout')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    if bool(args.config) == bool(args.preset):
        parser.error('give either a config or --preset')
    if args.baseline and args.preset:
        parser.error('--baseline compares a config with another; a preset '
                     'brings its own comparison')
    for name in ('classes', 'batch', 'images', 'steps', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be a positive int, got {value}')
    if args.warmup is not None and args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but torch sees no CUDA device')
    return args


def settings_of(args: argparse.Namespace) -> List[dict]:
    """The settings to run: the preset(s) or the config, with the command
    line's options on top."""
    if args.preset:
        names = sorted(PRESETS) if args.preset == 'all' else [args.preset]
        bases = [
            dict(
                PRESETS[n],
                name=n,
                config=osp.join(REPO_ROOT, PRESETS[n]['config']))
            for n in names
        ]
    else:
        name = osp.splitext(osp.basename(args.config))[0]
        bases = [dict(config=args.config, name=name, title=name)]
        if args.baseline:
            baseline = osp.splitext(osp.basename(args.baseline))[0]
            bases[0].update(
                title=f'{name} vs {baseline}',
                baseline=dict(config=args.baseline, title=baseline))
    settings = []
    for base in bases:
        setting = dict(
            dict(
                mode='both',
                classes=50,
                train_batch=None,
                test_batch=None,
                images=None,
                warmup=1,
                steps=3,
                speed_target=None,
                memory_target=None,
                max_ratio=None,
                rtol=RTOL), **base)
        setting['cfg_options'] = dict(
            base.get('cfg_options', {}), **(args.cfg_options or {}))
        if base.get('baseline'):
            baseline = dict(base['baseline'])
            if args.preset:
                baseline['config'] = osp.join(REPO_ROOT, baseline['config'])
            baseline['cfg_options'] = dict(
                baseline.get('cfg_options', {}), **(args.cfg_options or {}))
            setting['baseline'] = baseline
        setting.update(
            device=args.device,
            amp=args.amp,
            threads=args.threads or os.cpu_count() or 1,
            pretrained=args.pretrained,
            seed=args.seed,
            profile=args.profile)
        for key in ('mode', 'classes', 'images', 'warmup', 'steps'):
            if getattr(args, key) is not None:
                setting[key] = getattr(args, key)
        if args.batch is not None:
            setting['train_batch'] = setting['test_batch'] = args.batch
        settings.append(setting)
    return settings


# ----------------------------------------------------------------------
# the model, its two paths and the inputs
# ----------------------------------------------------------------------
def class_names(num: int) -> List[str]:
    """``num`` distinct class names: ImageNet's (its two repeated names
    numbered), then numbered ones."""
    names, seen = [], set()
    for name in IMAGENET_CLASSNAMES[:num]:
        name = name.replace(' ', '_')
        if name in seen:
            name = f'{name}_2'
        seen.add(name)
        names.append(name)
    return names + [f'object_{i}' for i in range(len(names), num)]


def build_model(setting: dict) -> tuple:
    """The config's model with random weights (unless ``pretrained``) and
    ``classes`` classes on the device, and the config."""
    cfg = Config.fromfile(setting['config'])
    cfg.merge_from_dict(setting['cfg_options'])
    init_default_scope(cfg.get('default_scope', 'mmprompt') or 'mmprompt')
    model_cfg = cfg.model.copy()
    if not setting['pretrained']:
        model_cfg.clip = dict(model_cfg.clip, pretrained=None)
    model_cfg.pop('class_names', None)
    torch.manual_seed(setting['seed'])
    model = MODELS.build(model_cfg)
    if not isinstance(getattr(model, 'head', None), (CoOpHead, CoCoOpHead)):
        raise ValueError(
            f"{setting['config']}: {PROG} compares the text encoders of a "
            'PromptClassifier with a CoOpHead or CoCoOpHead, got '
            f"{type(getattr(model, 'head', model)).__name__}")
    model.set_class_names(class_names(setting['classes']))
    return model.to(setting['device']).eval(), cfg


class Paths:
    """The two head settings of one model (see the module docstring).

    Both share the model's CLIP, prompt learner and parameters; only the
    head's text encoder and CoOp's ``cache_text_features`` differ.

    Args:
        model (PromptClassifier): With a ``CoOpHead`` or ``CoCoOpHead`` and
            its class names set (``K`` prompts per straightforward call).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        head = model.head
        straightforward = PlainTextEncoder(
            model.clip,
            cut_after_eot=False,
            text_chunk_size=len(head.class_names))
        self.settings = dict(
            mmprompt=dict(
                text_encoder=head.text_encoder, cache_text_features=True),
            straightforward=dict(
                text_encoder=straightforward, cache_text_features=False))
        self.prograd = isinstance(head, ProGradHead)
        if self.prograd:
            self.settings['mmprompt']['teacher'] = None  # the head's own
            self.settings['straightforward']['teacher'] = OriginalTeacher(
                model)
        self.promptsrc = isinstance(head, PromptSRCHead)
        if self.promptsrc:
            self.settings['mmprompt']['zero_shot'] = None  # the same CLIP
            self.settings['straightforward']['zero_shot'] = \
                OriginalZeroShotCLIP(model)
        self.current: Optional[str] = None
        self._wrappers: Dict[int, ProGradOptimWrapper] = {}

    def use(self, path: str) -> nn.Module:
        """Put the head in ``path``'s setting; returns the model."""
        head, setting = self.model.head, self.settings[path]
        head.text_encoder = setting['text_encoder']
        if isinstance(head, CoOpHead):
            head.cache_text_features = setting['cache_text_features']
        if self.prograd:
            head.__dict__.pop('teacher_logits', None)
            if setting['teacher'] is not None:
                head.teacher_logits = setting['teacher'].logits
        if self.promptsrc:
            for name in ('zero_shot_image_features', 'teacher_text_features'):
                head.__dict__.pop(name, None)
            copy_ = setting['zero_shot']
            if copy_ is not None:
                head.zero_shot_image_features = copy_.image_features
                head.teacher_text_features = copy_.text_features
        self.current = path
        return self.model

    def train_step(self, images: torch.Tensor, labels: torch.Tensor,
                   optimizer: torch.optim.Optimizer,
                   autocast: Callable) -> Dict[str, torch.Tensor]:
        """One training step of the current path; returns the losses.

        CoOp, CoCoOp, KgCoOp: the summed loss, one backward pass, the
        optimizer's step. ProGrad: ``ProGradOptimWrapper`` on mmprompt's
        path (as the runner calls it), the original's two backward passes
        and projection on the straightforward one.
        """
        model = self.model
        samples = _samples(labels)
        if self.prograd and self.current == 'mmprompt':
            wrapper = self._wrappers.get(id(optimizer))
            if wrapper is None or wrapper.optimizer is not optimizer:
                wrapper = self._wrappers[id(optimizer)] = ProGradOptimWrapper(
                    optimizer=optimizer)
            with autocast(), wrapper.optim_context(model):
                losses = model(images, samples, mode='loss')
            wrapper.update_params(model.parse_losses(losses)[0])
            return losses
        optimizer.zero_grad()
        if self.prograd:  # the original's prograd_backward_and_update
            self.settings['straightforward']['teacher'].images = images
            with autocast():
                losses = model(images, samples, mode='loss')
            params = [p for p in model.parameters() if p.requires_grad]
            losses['loss_kl'].backward(retain_graph=True)
            g_kl = [p.grad.clone() for p in params]
            optimizer.zero_grad()
            losses['loss_ce'].backward()
            for p, kl in zip(params, g_kl):
                p.grad = prograd_project(p.grad, kl)[0]
            optimizer.step()
            return losses
        with autocast():
            losses = model(images, samples, mode='loss')
            loss = model.parse_losses(losses)[0]
        loss.backward()
        optimizer.step()
        # The summed loss, and the terms of a head with several (PromptSRC).
        terms = {k: v for k, v in losses.items() if k != 'loss'}
        return dict(terms, loss=loss)

    def model_of(self, path: str) -> nn.Module:
        """The model a path runs (the one model for both)."""
        return self.model


class OriginalTeacher:
    """ProGrad's teacher as the original keeps it (``class CLIP`` in its
    ``prograd.py``): a second, fp32 copy of the model's CLIP, its text
    features of the head's templates computed once (a
    :class:`TextFeatureBank` on the copy), its image features computed from
    the images at every step by its own image tower.

    Args:
        model (PromptClassifier): With a ``ProGradHead``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.head = model.head
        self.clip = copy.deepcopy(model.clip).float()
        self.bank = TextFeatureBank(self.clip, self.head.teacher.templates)
        #: The images of the step (set before the forward).
        self.images: Optional[torch.Tensor] = None
        self.mib = sum(p.numel() * p.element_size()
                       for p in self.clip.model.parameters()) / 2**20

    def logits(self, image_features: torch.Tensor) -> torch.Tensor:
        """Stands in for ``ProGradHead.teacher_logits``: the copy's
        zero-shot logits of the step's images (the student's features are
        not used)."""
        with torch.no_grad():
            features = self.clip.encode_image(self.images).float()
            features = features / features.norm(dim=-1, keepdim=True)
            text = self.bank(self.head.class_names)
            return self.clip.logit_scale.exp().float() * features @ text.t()


class OriginalZeroShotCLIP:
    """PromptSRC's teacher as the original keeps it: a second frozen CLIP
    (a copy of the model's; the original's ``ZS_image_encoder`` and the
    fp32 CLIP it builds the template bank with), its image tower run on the
    step's images without prompts, its text features of the head's
    templates (mean, then normalised, fp32) computed once.

    Args:
        model (PromptClassifier): With a ``PromptSRCHead``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.head = model.head
        self.clip = copy.deepcopy(model.clip)
        self.bank = TextFeatureBank(
            self.clip, self.head.templates, 'mean_normalize', precision='fp32')
        self.mib = sum(p.numel() * p.element_size()
                       for p in self.clip.model.parameters()) / 2**20

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Stands in for ``PromptSRCHead.zero_shot_image_features``."""
        with torch.no_grad():
            features = self.clip.encode_image(images)
            return features / features.norm(dim=-1, keepdim=True)

    def text_features(self) -> torch.Tensor:
        """Stands in for ``PromptSRCHead.teacher_text_features``."""
        return self.bank(self.head.class_names)


class ModelPair:
    """The two models of a comparison (:data:`PAIR_PATHS`): the config's
    (``'model'``) and the baseline config's (``'baseline'``). The same
    interface as :class:`Paths`.

    Args:
        models (dict): ``{path: PromptClassifier}``, class names set.
    """

    def __init__(self, models: Dict[str, nn.Module]) -> None:
        self.models = models

    @property
    def model(self) -> nn.Module:
        return self.models['model']

    def use(self, path: str) -> nn.Module:
        """The model of ``path``."""
        return self.models[path]

    model_of = use


def random_inputs(model: nn.Module, num: int, setting: dict,
                  seed: int) -> tuple:
    """``num`` random (already normalised) images and labels."""
    gen = torch.Generator().manual_seed(seed)
    size = getattr(model.clip.model.visual, 'image_size', 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    images = torch.randn(num, 3, size, size, generator=gen)
    labels = torch.randint(setting['classes'], (num, ), generator=gen)
    return images.to(setting['device']), labels.to(setting['device'])


def _samples(labels: torch.Tensor) -> List[DataSample]:
    return [
        DataSample().set_gt_label(int(label)).to(labels.device)
        for label in labels
    ]


def loss_of(model: nn.Module, images: torch.Tensor,
            labels: torch.Tensor) -> torch.Tensor:
    """The training loss, as the runner computes it."""
    return model.parse_losses(model(images, _samples(labels), mode='loss'))[0]


def check_agreement(paths: Paths, setting: dict,
                    modes: Sequence[str]) -> Dict[str, float]:
    """Raise ``AssertionError`` unless both paths give the same logits (and
    in training the same loss and gradients) on 2 images, within ``RTOL``
    of the largest value; returns the largest relative differences."""
    model = paths.model
    images, labels = random_inputs(model, 2, setting, setting['seed'] + 1)
    outputs = {}
    for path in PATHS:
        paths.use(path).eval()
        model.set_class_names(model.class_names)  # no cached features
        with torch.no_grad():
            outputs[path] = {'test logits': model(images)}
        if 'train' in modes:
            model.train()
            outputs[path].update(_train_outputs(paths, images, labels))
            model.zero_grad(set_to_none=True)
            model.eval()
    return _differences(outputs, *PATHS, rtol=setting.get('rtol', RTOL))


def _train_outputs(paths: Paths, images: torch.Tensor,
                   labels: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The losses of a training step of the current path and the gradient
    the optimizer steps on (ProGrad's projected one), without the step."""
    model = paths.model
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD(params.values(), lr=0.0)
    applied = {}

    def record(*args, **kwargs):
        applied.update(
            (f'gradient of {n}', p.grad.clone()) for n, p in params.items())

    optimizer.step = record
    model.zero_grad(set_to_none=True)
    losses = paths.train_step(images, labels, optimizer,
                              contextlib.nullcontext)
    outputs = {
        'train loss' if name == 'loss' else f'train {name}': value
        for name, value in losses.items()
    }
    outputs.update(applied)
    return outputs


def _differences(outputs: Dict[str, dict],
                 first: str,
                 second: str,
                 rtol: float = RTOL) -> Dict[str, float]:
    """The largest difference of each output of two paths, relative to the
    second's largest value; ``AssertionError`` above ``rtol``."""
    found = {}
    for name, fast in outputs[first].items():
        fast = fast.detach().float()
        slow = outputs[second][name].detach().float()
        if fast.shape != slow.shape:
            raise AssertionError(f'{name}: shapes differ, {tuple(fast.shape)}'
                                 f' and {tuple(slow.shape)}')
        scale = slow.abs().max().clamp_min(1e-12)
        found[name] = float((fast - slow).abs().max() / scale)
        if not found[name] <= rtol:
            raise AssertionError(
                f'{name} of the {first} and {second} paths differ by '
                f'{found[name]:.2e} of their largest value (allowed {rtol}):'
                ' the benchmark would compare different computations')
    return found


# ----------------------------------------------------------------------
# a comparison of two models
# ----------------------------------------------------------------------
def pair_setting(setting: dict, path: str) -> dict:
    """The setting that builds ``path``'s model of a comparison: the
    baseline's config and options for ``'baseline'``."""
    if path == 'model':
        return setting
    baseline = setting['baseline']
    return dict(
        setting,
        config=baseline['config'],
        cfg_options=baseline.get('cfg_options', {}))


def check_pair(pair: ModelPair, setting: dict,
               modes: Sequence[str]) -> Dict[str, float]:
    """Give the baseline the model's learned state, then raise
    ``AssertionError`` unless both give the same logits on 2 images (and
    in training the same ``loss``, the cross-entropy both heads report),
    within ``RTOL``; returns the largest relative differences.

    Raises:
        ValueError: The two models do not learn the same tensors (nothing
            to compare: pass ``--skip-check``).
    """
    model, baseline = pair.use('model'), pair.use('baseline')
    state = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    other = {k: tuple(v.shape) for k, v in baseline.state_dict().items()}
    if shapes != other:
        raise ValueError(
            f'the model learns {shapes} and the baseline {other}: their '
            'outputs cannot be compared at equal parameters (--skip-check '
            'times them without the check)')
    baseline.load_state_dict(state)
    images, labels = random_inputs(model, 2, setting, setting['seed'] + 1)
    samples = [
        DataSample().set_gt_label(int(label)).to(labels.device)
        for label in labels
    ]
    outputs = {}
    for path in PAIR_PATHS:
        net = pair.use(path).eval()
        net.set_class_names(net.class_names)  # no cached features
        with torch.no_grad():
            outputs[path] = {'test logits': net(images)}
            if 'train' in modes:
                net.train()
                losses = net(images, samples, mode='loss')
                outputs[path]['train loss (cross-entropy)'] = losses['loss']
                net.eval()
    return _differences(outputs, *PAIR_PATHS)


# ----------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------
def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


class PeakMemory:
    """Peak memory above the level at :meth:`start`.

    CUDA: ``max_memory_allocated``. CPU: the peak resident set (``VmHWM``),
    reset to the current one at :meth:`start` through
    ``/proc/self/clear_refs`` after returning freed heap memory to the system
    (``malloc_trim``); where that is impossible, ``ru_maxrss``.
    """

    def __init__(self, device: str) -> None:
        self.device, self.method, self.base = device, '', 0

    @staticmethod
    def _status(key: str) -> Optional[int]:
        with contextlib.suppress(OSError), open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) * 1024
        return None

    def start(self) -> None:
        if self.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            self.method = 'torch.cuda.max_memory_allocated'
            return
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL('libc.so.6').malloc_trim(0)
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
            self.method = 'VmHWM after clear_refs'
        except OSError:
            self.method = 'ru_maxrss (peak since process start)'
        self.base = self._status('VmRSS') or 0

    def peak(self) -> int:
        """Bytes above the level at :meth:`start`."""
        if self.device == 'cuda':
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        if self.method.startswith('VmHWM'):
            peak = self._status('VmHWM') or 0
        else:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, peak - self.base)


@contextlib.contextmanager
def timed_image_tower(clip: nn.Module, device: str, seconds: List[float]):
    """Within the block, add the seconds of each ``clip.encode_image`` call
    (the frozen image tower, the same in both paths) to ``seconds``."""
    encode = clip.encode_image

    def timed(*args, **kwargs):
        _sync(device)
        start = time.perf_counter()
        try:
            return encode(*args, **kwargs)
        finally:
            _sync(device)
            seconds.append(time.perf_counter() - start)

    with mock.patch.object(clip, 'encode_image', timed):
        yield


class Phase:
    """A training step or an evaluation pass of the model, for either path.

    ``step()`` is what is timed: one training step (forward, loss, backward,
    SGD), or the logits of all ``images`` in test batches. ``first()`` is
    the part whose peak memory is the step's: the step in training, the
    first batch in evaluation (every batch is as large, and the first also
    encodes CoOp's text features). ``warm()`` pays first-call costs: a step,
    or a batch of 2 images. ``fresh()`` runs before each: the train/eval
    mode, and a new evaluation without CoOp's cached text features.
    """

    def __init__(self,
                 model: nn.Module,
                 setting: dict,
                 mode: str,
                 train_step: Optional[Callable] = None) -> None:
        self.model, self.mode, self.setting = model, mode, setting
        if mode == 'train':
            self.batch = self.images = setting['train_batch']
            images, labels = random_inputs(model, self.batch, setting,
                                           setting['seed'])
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer = torch.optim.SGD(params, **SGD)

            def step():
                if train_step is not None:  # the path's own (Paths)
                    train_step(images, labels, optimizer, self._autocast)
                    return
                optimizer.zero_grad()
                with self._autocast():
                    loss = loss_of(model, images, labels)
                loss.backward()
                optimizer.step()

            self.step = self.first = self.warm = step
            return
        self.batch, self.images = setting['test_batch'], setting['images']
        images, _ = random_inputs(model, self.images, setting, setting['seed'])
        batches = list(images.split(self.batch))

        def run(chunks):
            with torch.no_grad(), self._autocast():
                for chunk in chunks:
                    model(chunk)

        self.step = lambda: run(batches)
        self.first = lambda: run(batches[:1])
        self.warm = lambda: run([batches[0][:2]])

    def _autocast(self):
        device = self.setting['device']
        dtype = torch.bfloat16 if device == 'cpu' else torch.float16
        return torch.autocast(device, dtype, enabled=self.setting['amp'])

    def fresh(self) -> None:
        self.model.train(self.mode == 'train')
        if self.mode == 'test':
            self.model.set_class_names(self.model.class_names)

    def warm_up(self, count: int) -> None:
        for _ in range(count):
            self.fresh()
            self.warm()


def measure_memory(paths: Paths, setting: dict, path: str, mode: str) -> dict:
    """Peak memory of one step of ``path`` after the warm-up, above the
    loaded model and data."""
    phase = Phase(
        paths.use(path), setting, mode, getattr(paths, 'train_step', None))
    phase.warm_up(setting['warmup'])
    _sync(setting['device'])
    memory = PeakMemory(setting['device'])
    phase.fresh()
    memory.start()
    phase.first()
    return dict(peak_mib=memory.peak() / 2**20, memory_method=memory.method)


def measure_time(paths: Paths, setting: dict, path_names: Sequence[str],
                 mode: str) -> Dict[str, dict]:
    """Time ``steps`` rounds after each path's warm-up, one step of each
    path per round, so that a slow spell of a shared machine slows both
    paths rather than one.

    Returns:
        dict: Per path the ``seconds``, ``cpu_seconds`` and
        ``image_tower_seconds`` of each timed step.
    """
    device = setting['device']
    # One phase (inputs, optimizer) per model: both paths of one model
    # share it; two models have their own, on equal inputs.
    phases, by_model = {}, {}
    for path in path_names:
        model = paths.model_of(path)
        if id(model) not in by_model:
            by_model[id(model)] = Phase(model, setting, mode,
                                        getattr(paths, 'train_step', None))
        phases[path] = by_model[id(model)]
    for path in path_names:
        paths.use(path)
        phases[path].warm_up(setting['warmup'])
    timings = {
        path: dict(seconds=[], cpu_seconds=[], image_tower_seconds=[])
        for path in path_names
    }
    for _ in range(setting['steps']):
        for path in path_names:
            model = paths.use(path)
            phase = phases[path]
            phase.fresh()
            tower = []
            with timed_image_tower(model.clip, device, tower):
                _sync(device)
                start, cpu = time.perf_counter(), time.process_time()
                phase.step()
                _sync(device)
            timing = timings[path]
            timing['seconds'].append(time.perf_counter() - start)
            timing['cpu_seconds'].append(time.process_time() - cpu)
            timing['image_tower_seconds'].append(sum(tower))
    if setting.get('profile'):
        for path in path_names:
            _profile(paths, phases[path], setting, path)
    return timings


def _profile(paths: Paths, phase: Phase, setting: dict, path: str) -> None:
    """A ``torch.profiler`` table of one more step of a path."""
    cuda = setting['device'] == 'cuda'
    activities = [torch.profiler.ProfilerActivity.CPU]
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    paths.use(path)
    phase.fresh()
    with torch.profiler.profile(activities=activities) as profiler:
        phase.step()
        _sync(setting['device'])
    sort = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    os.makedirs(setting['profile'], exist_ok=True)
    out = osp.join(setting['profile'],
                   f"{setting['name']}_{phase.mode}_{path}.txt")
    with open(out, 'w') as f:
        f.write(profiler.key_averages().table(sort_by=sort, row_limit=25))
    print_log(f'profile written to {out}', logger='current')


# ----------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------
def resolve_sizes(setting: dict, cfg: Config) -> dict:
    """Fill in the config's batch sizes where the setting has none."""
    setting = dict(setting)
    for key, loader, default in (('train_batch', 'train_dataloader', 1),
                                 ('test_batch', 'test_dataloader', 100)):
        if setting[key] is None:
            setting[key] = int((cfg.get(loader)
                                or {}).get('batch_size', default))
    if setting['images'] is None:
        setting['images'] = setting['test_batch']
    setting['test_batch'] = min(setting['test_batch'], setting['images'])
    return setting


def run_worker(spec_file: str) -> None:
    """Measure the peak memory of one path and phase (in a fresh
    subprocess)."""
    with open(spec_file) as f:
        spec = json.load(f)
    setting = spec['setting']
    torch.set_num_threads(setting['threads'])
    if spec['path'] in PAIR_PATHS:  # that model only
        model, _ = build_model(pair_setting(setting, spec['path']))
        paths = ModelPair({spec['path']: model})
    else:
        model, _ = build_model(setting)
        paths = Paths(model)
    result = measure_memory(paths, setting, spec['path'], spec['mode'])
    with open(spec['result'], 'w') as f:
        json.dump(result, f)


def _in_subprocess(setting: dict, path: str, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec = dict(
            setting=setting,
            path=path,
            mode=mode,
            result=osp.join(tmp, 'result.json'))
        spec_file = osp.join(tmp, 'spec.json')
        with open(spec_file, 'w') as f:
            json.dump(spec, f)
        proc = subprocess.run(
            [sys.executable,
             osp.abspath(__file__), '--worker', spec_file],
            capture_output=True,
            text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"measuring {path} {mode} of {setting['name']} failed "
                f'(exit {proc.returncode}):\n{proc.stderr[-4000:]}')
        with open(spec['result']) as f:
            return json.load(f)


def run_setting(setting: dict, path_names: Sequence[str], isolate: bool,
                check: bool) -> dict:
    """Check agreement, then measure every path and phase of a setting."""
    torch.set_num_threads(setting['threads'])
    model, cfg = build_model(setting)
    setting = resolve_sizes(setting, cfg)
    paths = Paths(model)
    modes = list(MODES) if setting['mode'] == 'both' else [setting['mode']]
    learner = model.head.prompt_learner
    record = dict(
        setting,
        arch=model.clip.arch,
        method=type(model.head).__name__,
        text_encoder=type(paths.settings['mmprompt']['text_encoder']).__name__,
        n_ctx=learner.n_ctx,
        threads=torch.get_num_threads(),
        modes=modes,
        rows=[])
    if paths.prograd:
        # Held by the straightforward path only, loaded before any step.
        record['teacher_copy_mib'] = paths.settings['straightforward'][
            'teacher'].mib
    if paths.promptsrc:
        record['teacher_copy_mib'] = paths.settings['straightforward'][
            'zero_shot'].mib
    name = setting['name']
    if check:
        record['agreement'] = check_agreement(paths, setting, modes)
        print_log(
            f"{name}: both paths agree: {record['agreement']}",
            logger='current')
    for mode in modes:
        row = _measure_mode(paths, setting, path_names, mode, isolate)
        if set(PATHS) <= set(path_names):
            fast, slow = row['mmprompt'], row['straightforward']
            # Both paths process the same images per step.
            row['round_speedups'] = [
                s / f for f, s in zip(fast['seconds'], slow['seconds'])
            ]
            row['speedup'] = statistics.median(row['round_speedups'])
            row['memory_ratio'] = (
                fast['peak_mib'] /
                slow['peak_mib'] if slow['peak_mib'] > 0 else None)
        record['rows'].append(row)
    return record


def _measure_mode(paths, setting: dict, path_names: Sequence[str], mode: str,
                  isolate: bool) -> dict:
    """Peak memory (in a fresh process each if ``isolate``) and interleaved
    timings of every path in one phase: the row of ``mode``."""
    name = setting['name']
    row = dict(mode=mode)
    for path in path_names:
        print_log(f'{name}: peak memory of {path} {mode}...', logger='current')
        memory = (
            _in_subprocess(setting, path, mode) if isolate else measure_memory(
                paths, setting, path, mode))
        row[path] = memory
    print_log(f'{name}: timing {mode}, interleaved...', logger='current')
    for path, timing in measure_time(paths, setting, path_names, mode).items():
        row[path].update(timing)
        median = statistics.median(timing['seconds'])
        images = setting['train_batch' if mode == 'train' else 'images']
        row[path].update(median_s=median, images_per_s=images / median)
        print_log(
            f"{name} {mode} {path}: {row[path]['images_per_s']:.3g} "
            f"img/s, {row[path]['peak_mib']:.0f} MiB",
            logger='current')
    return row


def run_pair(setting: dict, isolate: bool, check: bool) -> dict:
    """Check that the two models agree at equal parameters, then measure
    both in every phase: time ratio model / baseline per round."""
    torch.set_num_threads(setting['threads'])
    models, cfg = {}, None
    for path in PAIR_PATHS:
        models[path], loaded = build_model(pair_setting(setting, path))
        cfg = cfg or loaded
    setting = resolve_sizes(setting, cfg)
    pair = ModelPair(models)
    modes = list(MODES) if setting['mode'] == 'both' else [setting['mode']]
    model, baseline = models['model'], models['baseline']
    record = dict(
        setting,
        arch=model.clip.arch,
        method=type(model.head).__name__,
        baseline_method=type(baseline.head).__name__,
        text_encoder=type(model.head.text_encoder).__name__,
        n_ctx=model.head.prompt_learner.n_ctx,
        threads=torch.get_num_threads(),
        modes=modes,
        rows=[])
    if check:
        record['agreement'] = check_pair(pair, setting, modes)
        print_log(
            f"{setting['name']}: equal parameters, equal outputs: "
            f"{record['agreement']}",
            logger='current')
    for mode in modes:
        row = _measure_mode(pair, setting, PAIR_PATHS, mode, isolate)
        fast, slow = row['model'], row['baseline']
        row['round_ratios'] = [
            m / b for m, b in zip(fast['seconds'], slow['seconds'])
        ]
        row['ratio'] = statistics.median(row['round_ratios'])
        row['memory_ratio'] = (
            fast['peak_mib'] /
            slow['peak_mib'] if slow['peak_mib'] > 0 else None)
        record['rows'].append(row)
    return record


# ----------------------------------------------------------------------
# a method on cached features against one CoOp epoch
# ----------------------------------------------------------------------
def build_feature_model(setting: dict, clip: nn.Module) -> nn.Module:
    """The config's ``AdapterClassifier`` on ``clip`` (the baseline's frozen
    CLIP: the same features) with ``classes`` classes."""
    cfg = Config.fromfile(setting['config'])
    cfg.merge_from_dict(setting['cfg_options'])
    model_cfg = cfg.model.copy()
    if model_cfg.get('type') != 'AdapterClassifier':
        raise ValueError(f"{setting['config']}: a 'features' preset times an "
                         f"AdapterClassifier, got {model_cfg.get('type')}")
    model_cfg.clip = clip
    model_cfg.pop('class_names', None)
    model = MODELS.build(model_cfg)
    model.set_class_names(class_names(setting['classes']))
    return model.to(setting['device'])


def few_shot_split(model: nn.Module, setting: dict, shots: int,
                   seed: int) -> tuple:
    """``shots`` random images of each class (in random order) and their
    labels."""
    images, _ = random_inputs(model, setting['classes'] * shots, setting, seed)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(setting['classes']).repeat_interleave(shots)
    labels = labels[torch.randperm(len(labels), generator=gen)]
    return images, labels.to(setting['device'])


def extract(model: nn.Module, images: torch.Tensor,
            batch: int) -> torch.Tensor:
    """Raw features ``(N, D)`` of ``images``, as ``FeatureCacheHook``
    extracts them."""
    return torch.cat([
        model.extract_features(images[i:i + batch])
        for i in range(0, len(images), batch)
    ])


def coop_epoch(model: nn.Module, optimizer, images: torch.Tensor,
               labels: torch.Tensor, batch: int) -> float:
    """One training epoch of CoOp (the runner's steps: forward, loss,
    backward, SGD) over the split; returns the last loss."""
    model.train()
    loss = None
    for i in range(0, len(images), batch):
        optimizer.zero_grad()
        loss = loss_of(model, images[i:i + batch], labels[i:i + batch])
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def fit_on_features(model: nn.Module, setting: dict, train: FeatureSet,
                    val: FeatureSet) -> dict:
    """What ``AdapterTrainLoop`` does on cached features: a fresh adapter's
    fit, ``adapter_epochs`` epochs of its loss on batches of the cached
    training features (``adapter_optimizer``), its search on ``val``;
    returns what was chosen."""
    model.adapter = MODELS.build(setting['adapter_cfg'])
    if hasattr(model.adapter, 'set_logit_scale'):
        model.adapter.set_logit_scale(model.clip.logit_scale.detach())
    model.adapter.to(setting['device'])
    chosen = dict(model.fit(train, val))
    epochs = setting.get('adapter_epochs', 0)
    if epochs and model.adapter.trainable:
        params = [p for p in model.adapter.parameters() if p.requires_grad]
        optimizer_cfg = dict(setting['adapter_optimizer'])
        optimizer = getattr(torch.optim,
                            optimizer_cfg.pop('type'))(params, **optimizer_cfg)
        batch = setting.get('adapter_batch', 256)
        gen = torch.Generator().manual_seed(setting['seed'])
        features, labels = train.features, train.labels
        for epoch in range(epochs):
            view = features[epoch % len(features)]
            order = torch.randperm(len(labels), generator=gen)
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                optimizer.zero_grad()
                model.adapter.loss(view[idx], labels[idx],
                                   model.text_features())['loss'].backward()
                optimizer.step()
    chosen.update(model.search(val))
    return chosen


def run_features(setting: dict) -> dict:
    """A method on cached features against one CoOp epoch on the same
    split: the features extracted once (timed), then per round one CoOp
    epoch and the method on the features, interleaved."""
    torch.set_num_threads(setting['threads'])
    coop, _ = build_model(pair_setting(setting, 'baseline'))
    model = build_feature_model(setting, coop.clip)
    cfg = Config.fromfile(setting['config'])
    cfg.merge_from_dict(setting['cfg_options'])
    setting = dict(setting, adapter_cfg=cfg.model.adapter.to_dict())
    shots, batch = setting['shots'], setting['train_batch']
    images, labels = few_shot_split(coop, setting, shots, setting['seed'])
    val_images, val_labels = few_shot_split(coop, setting, min(shots, 4),
                                            setting['seed'] + 1)
    views = setting.get('views', 1)
    name = setting['name']
    print_log(
        f'{name}: extracting the features of {len(images)} training images '
        f'({views} view(s)) and {len(val_images)} val images...',
        logger='current')
    _sync(setting['device'])
    start = time.perf_counter()
    train = FeatureSet(
        torch.stack([extract(model, images, 64) for _ in range(views)]),
        labels.cpu(), 'train')
    val = FeatureSet(
        extract(model, val_images, 64)[None], val_labels.cpu(), 'val')
    _sync(setting['device'])
    extraction = time.perf_counter() - start
    sgd = torch.optim.SGD([p for p in coop.parameters() if p.requires_grad],
                          **SGD)
    # First-call costs (imports, allocations) out of the rounds: one CoOp
    # step and one run of the method, then `warmup` untimed rounds.
    coop_epoch(coop, sgd, images[:batch], labels[:batch], batch)
    fit_on_features(model, setting, train, val)
    for _ in range(setting['warmup']):
        coop_epoch(coop, sgd, images, labels, batch)
        fit_on_features(model, setting, train, val)
    seconds = dict(baseline=[], model=[])
    chosen = None
    for r in range(setting['steps']):
        for path in PAIR_PATHS[::-1]:  # CoOp first
            _sync(setting['device'])
            start = time.perf_counter()
            if path == 'baseline':
                coop_epoch(coop, sgd, images, labels, batch)
            else:
                chosen = fit_on_features(model, setting, train, val)
            _sync(setting['device'])
            seconds[path].append(time.perf_counter() - start)
        print_log(
            f"{name} round {r + 1}: CoOp epoch {seconds['baseline'][-1]:.3g}"
            f" s, {type(model.adapter).__name__} "
            f"{seconds['model'][-1]:.3g} s",
            logger='current')
    speedups = [b / m for b, m in zip(seconds['baseline'], seconds['model'])]
    return dict(
        setting,
        arch=coop.clip.arch,
        method=type(model.adapter).__name__,
        baseline_method=type(coop.head).__name__,
        threads=torch.get_num_threads(),
        images=len(images),
        val_images=len(val_images),
        extraction_s=extraction,
        seconds=seconds,
        median_s={
            k: statistics.median(v)
            for k, v in seconds.items()
        },
        round_speedups=speedups,
        speedup=statistics.median(speedups),
        chosen={
            k: v
            for k, v in (chosen or {}).items()
        })


def _features_table(records: List[dict]) -> List[str]:
    lines = [
        '| setting | K | shots | train images | features once (s) | '
        'CoOp epoch (s) | method on features (s) | speed-up | per round | '
        'chosen |', '|---|--:|--:|--:|--:|--:|--:|---|---|---|'
    ]
    for r in records:
        chosen = ', '.join(f"{k} {v['value']:.4g} ({v['split']})"
                           for k, v in r['chosen'].items()
                           if isinstance(v.get('value'), (int, float)))
        lines.append(
            f"| `{r['name']}`: {r['title']} | {r['classes']} | "
            f"{r['shots']} | {r['images']} | {r['extraction_s']:.3g} | "
            f"{r['median_s']['baseline']:.3g} | {r['median_s']['model']:.3g}"
            f" | {r['speedup']:.1f}× | {_range(r['round_speedups'])} | "
            f'{chosen} |')
    return lines


# ----------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------
def machine() -> dict:
    """Where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    info = dict(
        date=datetime.date.today().isoformat(),
        cpu=cpu,
        nproc=os.cpu_count(),
        torch=torch.__version__,
        python=platform.python_version())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
    with contextlib.suppress(OSError, AttributeError):
        info['load_average'] = round(os.getloadavg()[0], 2)
    return info


def _num(value: Optional[float]) -> str:
    if value is None:
        return '-'
    return f'{value:.0f}' if abs(value) >= 1000 else f'{value:.3g}'


def _ratio(value: Optional[float], target: Optional[float],
           at_least: bool) -> str:
    if value is None:
        return '-'
    text = f'{value:.1f}×' if at_least else f'{value:.2f}×'
    if target is None:
        return text
    met = value >= target if at_least else value <= target
    goal = f'≥{target:g}×' if at_least else f'≤{target:.2f}×'
    return f"{text} ({goal}: {'met' if met else '**not met**'})"


def _range(ratios: Optional[List[float]], digits: int = 1) -> str:
    if not ratios:
        return '-'
    low, high = f'{min(ratios):.{digits}f}', f'{max(ratios):.{digits}f}'
    return f'{low}×' if low == high else f'{low}–{high}×'


def markdown(records: List[dict], info: dict) -> str:
    """The results as markdown: where and how they were measured, the
    comparison table (of the two paths of one model), the table of the
    comparisons of two models, and every timed step's seconds."""
    features = [r for r in records if r.get('kind') == 'features']
    records = [r for r in records if r.get('kind') != 'features']
    if not records:
        return _features_header(features, info)
    first = records[0]
    load = info.get('load_average')
    singles = [r for r in records if not r.get('baseline')]
    pairs = [r for r in records if r.get('baseline')]
    header = (
        f"Measured {info['date']} on {info['cpu']} ({info['nproc']} cores"
        f"{f', load {load:.1f} at the end' if load is not None else ''}), "
        f"{first['device']}, {first['threads']} torch threads, torch "
        f"{info['torch']}, {'amp' if first['amp'] else 'fp32'}, "
        f"{'pretrained' if first['pretrained'] else 'random'} weights. "
        'Speed-up: the median over rounds of straightforward s / mmprompt s, '
        'one step of each path per round in one process; img/s from each '
        "path's median step; peak memory of one step above the loaded model "
        'and data, each path in a fresh process.')
    if pairs:
        header += (' Time ratio (two models): the median over rounds of '
                   'model s / baseline s, timed and measured likewise.')
    for record in singles:
        if record.get('teacher_copy_mib'):
            header += (
                f" `{record['name']}`: the straightforward path also holds "
                f"the original's second CLIP as teacher "
                f"({record['teacher_copy_mib']:.0f} MiB of fp32 weights, "
                'loaded before the steps, so outside its peak).')
    lines = [header, '']
    if singles:
        lines += [
            '| setting | phase | K | batch | images | mmprompt img/s | '
            'straightforward img/s | speed-up | per round | mmprompt peak '
            'MiB | straightforward peak MiB | memory ratio |',
            '|---|---|--:|--:|--:|--:|--:|---|---|--:|--:|---|'
        ]
    steps = [
        '| setting | phase | path | timed s (median; all) | image tower s '
        '| CPU s |', '|---|---|---|---|--:|--:|'
    ]
    for record in records:
        name = f"`{record['name']}`"
        if record['title'] != record['name']:
            name += f": {record['title']}"
        if record.get('baseline'):
            steps += _pair_steps(record, name)
            continue
        for row in record['rows']:
            train = row['mode'] == 'train'
            batch = record['train_batch' if train else 'test_batch']
            images = f'{batch}/step' if train else str(record['images'])
            memory_target = record['memory_target'] if train else None
            fast = row.get('mmprompt', {})
            slow = row.get('straightforward', {})
            lines.append(
                f"| {name} | {row['mode']} | {record['classes']} | {batch} | "
                f"{images} | {_num(fast.get('images_per_s'))} | "
                f"{_num(slow.get('images_per_s'))} | "
                f"{_ratio(row.get('speedup'), record['speed_target'], True)}"
                f" | {_range(row.get('round_speedups'))} | "
                f"{_num(fast.get('peak_mib'))} | "
                f"{_num(slow.get('peak_mib'))} | "
                f"{_ratio(row.get('memory_ratio'), memory_target, False)} |")
            for path in PATHS:
                if path not in row:
                    continue
                r = row[path]
                timed = ', '.join(f'{s:.3g}' for s in r['seconds'])
                steps.append(
                    f"| {name} | {row['mode']} | {path} | "
                    f"{r['median_s']:.3g} ({timed}) | "
                    f"{statistics.median(r['image_tower_seconds']):.3g} | "
                    f"{statistics.median(r['cpu_seconds']):.3g} |")
    if pairs:
        if singles:
            lines.append('')
        lines += _pair_table(pairs)
    text = '\n'.join(lines + [''] + steps)
    if features:
        text += '\n\n' + _features_header(features, info)
    return text


def _features_header(records: List[dict], info: dict) -> str:
    """The table of the methods on cached features, with where and how it
    was measured."""
    first = records[0]
    load = info.get('load_average')
    header = (
        f"Measured {info['date']} on {info['cpu']} ({info['nproc']} cores"
        f"{f', load {load:.1f} at the end' if load is not None else ''}), "
        f"{first['device']}, {first['threads']} torch threads, torch "
        f"{info['torch']}, {'pretrained' if first['pretrained'] else 'random'}"
        f" weights, {first['arch']}; {first['steps']} rounds, medians.")
    return '\n'.join([header, ''] + _features_table(records))


def _pair_names(record: dict) -> Dict[str, str]:
    """How a comparison's two paths are shown: their heads."""
    return dict(
        model=f"model ({record['method']})",
        baseline=f"baseline ({record['baseline_method']})")


def _pair_table(records: List[dict]) -> List[str]:
    lines = [
        '| setting | phase | K | batch | model | baseline | model img/s | '
        'baseline img/s | time ratio | per round | model peak MiB | '
        'baseline peak MiB | memory ratio |',
        '|---|---|--:|--:|---|---|--:|--:|---|---|--:|--:|---|'
    ]
    for record in records:
        name = f"`{record['name']}`: {record['title']}"
        for row in record['rows']:
            train = row['mode'] == 'train'
            batch = record['train_batch' if train else 'test_batch']
            fast, slow = row['model'], row['baseline']
            lines.append(
                f"| {name} | {row['mode']} | {record['classes']} | {batch} | "
                f"{record['method']} | {record['baseline_method']} | "
                f"{_num(fast['images_per_s'])} | "
                f"{_num(slow['images_per_s'])} | "
                f"{_ratio(row['ratio'], record.get('max_ratio'), False)} | "
                f"{_range(row['round_ratios'], 2)} | "
                f"{_num(fast['peak_mib'])} | {_num(slow['peak_mib'])} | "
                f"{_ratio(row['memory_ratio'], None, False)} |")
    return lines


def _pair_steps(record: dict, name: str) -> List[str]:
    lines = []
    shown = _pair_names(record)
    for row in record['rows']:
        for path in PAIR_PATHS:
            r = row[path]
            timed = ', '.join(f'{s:.3g}' for s in r['seconds'])
            lines.append(
                f"| {name} | {row['mode']} | {shown[path]} | "
                f"{r['median_s']:.3g} ({timed}) | "
                f"{statistics.median(r['image_tower_seconds']):.3g} | "
                f"{statistics.median(r['cpu_seconds']):.3g} |")
    return lines


def _log_to_stderr() -> None:
    for handler in MMLogger.get_current_instance().handlers:
        if getattr(handler, 'stream', None) is sys.stdout:
            handler.setStream(sys.stderr)


def _write(path: str, info: dict, records: List[dict]) -> None:
    with open(path, 'w') as f:
        json.dump(dict(machine=info, records=records), f, indent=2)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    """Run the benchmark; returns one record per measured setting.

    ``--out`` is rewritten after every setting, so an interrupted
    ``--preset all`` keeps what it measured. A setting that fails is
    reported and skipped, and the exit status is then 1.
    """
    args = parse_args(argv)
    if args.worker:
        run_worker(args.worker)
        return []
    if args.markdown:
        _log_to_stderr()
    records, failed = [], []
    for setting in settings_of(args):
        try:
            if setting.get('kind') == 'features':
                record = run_features(setting)
            elif setting.get('baseline'):
                record = run_pair(setting, args.isolate, not args.skip_check)
            else:
                record = run_setting(setting, args.paths, args.isolate,
                                     not args.skip_check)
            records.append(record)
        except (AssertionError, RuntimeError, ValueError) as err:
            print_log(
                f"{setting['name']} failed: {type(err).__name__}: {err}",
                logger='current',
                level=logging.ERROR)
            failed.append(f"{setting['name']}: {type(err).__name__}: {err}")
        if args.out:
            _write(args.out, machine(), records)
    info = machine()
    if args.out:
        _write(args.out, info, records)
        print_log(f'results written to {args.out}', logger='current')
    if records:
        print(markdown(records, info))
    if failed:
        print('\nFailed:\n' + '\n'.join(f'- {line}' for line in failed))
        sys.exit(1)
    return records


if __name__ == '__main__':
    main()
