# Copyright (c) mmprompt contributors. All rights reserved.
"""Speed and peak memory of mmprompt against the straightforward computation.

For the model of a config (any ``PromptClassifier``: CoOp, CoCoOp or
zero-shot) this measures, side by side in one run,

* a **training step**: forward, backward and an SGD step on a batch of
  random images with random labels, and
* an **evaluation**: the logits of ``N`` random images in batches of the
  test batch size,

once through mmprompt's model and once through the *straightforward*
computation of the original CoOp/CoCoOp code, written here (never in the
library) with open_clip's own modules: full 77-token prompts, one text
tower call per image for CoCoOp (a Python loop over the images), text
features recomputed on every forward for CoOp and zero-shot, no shared
prefix, no chunking. Before anything is timed the two paths' logits (and,
for training, loss and gradients) are checked to agree, so the numbers never
compare different computations.

Weights are random unless ``--pretrained``: speed does not depend on their
values. Each measured phase runs in a fresh subprocess so that its peak
memory is its own (see ``docs/benchmark.md`` for the method).

Examples:
    # one of the settings of the docs table
    python tools/analysis_tools/benchmark.py --preset cocoop-train-m4
    # the whole docs table, as markdown
    python tools/analysis_tools/benchmark.py --preset all --markdown
    # any config
    python tools/analysis_tools/benchmark.py configs/coop_vit-b16.py \\
        --classes 100 --batch 32 --images 200 --mode test --out res.json
"""
import argparse
import contextlib
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
from typing import Callable, Dict, List, Optional, Sequence, Tuple

# First: registers mmprompt's modules (and the tiny test CLIPs).
import mmprompt  # noqa: F401  # isort: skip
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger, print_log
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from mmprompt.registry import MODELS

PROG = 'benchmark.py'
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PATHS = ('mmprompt', 'straightforward')
MODES = ('train', 'test')
# SGD of the original (Dassl's defaults with CoOp's learning rate).
SGD = dict(lr=0.002, momentum=0.9, weight_decay=5e-4)
# How close the two paths must be, relative to the largest value.
RTOL = 1e-4

# The settings of the issue "Fast CoCoOp and CoOp without changing a logit"
# and of the docs table. Steps are few: a straightforward CoCoOp step of
# ViT-B/16 at 50 classes x batch 4 takes seconds on a 2-core CPU.
PRESETS: Dict[str, dict] = {
    'cocoop-train-m4':
    dict(
        config='configs/cocoop_vit-b16.py',
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
        config='configs/cocoop_vit-b16.py',
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
        config='configs/cocoop_vit-b16.py',
        title='CoCoOp ViT-B/16, M=4 "a photo of a"',
        mode='test',
        classes=50,
        images=20,
        warmup=1,
        steps=2,
        speed_target=5.0),
    'coop-eval-1k':
    dict(
        config='configs/coop_vit-b16.py',
        title='CoOp ViT-B/32, M=16 random',
        cfg_options={'model.clip.arch': 'ViT-B-32'},
        mode='test',
        classes=1000,
        images=200,
        test_batch=100,
        warmup=1,
        steps=1,
        speed_target=4.0),
}


# ----------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Images per second and peak memory of training steps '
        'and evaluation, mmprompt against the straightforward computation '
        'of the original CoOp/CoCoOp.')
    parser.add_argument(
        'config',
        nargs='?',
        help='a config whose model is a PromptClassifier (not needed with '
        '--preset)')
    parser.add_argument(
        '--preset',
        choices=sorted(PRESETS) + ['all'],
        help='a setting of the docs table (fixes the config, classes, '
        'batch, images, steps and warm-up; other options still apply)')
    parser.add_argument(
        '--classes',
        type=int,
        help='number of classes K, named after the first K ImageNet '
        'classes (default: 50)')
    parser.add_argument(
        '--batch',
        type=int,
        help='images per training step and per evaluation batch (default: '
        "the config's train and test batch sizes)")
    parser.add_argument(
        '--images',
        type=int,
        help='images per evaluation (default: one test batch)')
    parser.add_argument(
        '--steps',
        type=int,
        help='timed training steps / evaluations; the median is reported '
        '(default: 3)')
    parser.add_argument(
        '--warmup',
        type=int,
        help='untimed training steps / evaluation batches before timing '
        '(default: 1)')
    parser.add_argument(
        '--mode',
        choices=['train', 'test', 'both'],
        help='what to measure (default: both; zero-shot: test)')
    parser.add_argument(
        '--device',
        default='cpu',
        choices=['cpu', 'cuda'],
        help='device (default: cpu)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='run the forward under autocast (bf16 on CPU, fp16 on CUDA); '
        'the agreement check always runs in the config precision')
    parser.add_argument(
        '--threads', type=int, help='torch CPU threads (default: all cores)')
    parser.add_argument(
        '--pretrained',
        action='store_true',
        help="keep the config's model.clip.pretrained instead of random "
        'weights (needs the weights locally or a download)')
    parser.add_argument(
        '--paths',
        nargs='+',
        choices=PATHS,
        default=list(PATHS),
        help='which paths to measure (default: both); the agreement check '
        'always runs both')
    parser.add_argument(
        '--no-isolate',
        dest='isolate',
        action='store_false',
        help='measure in this process instead of one fresh subprocess per '
        'phase (faster; peak memory then less reliable)')
    parser.add_argument(
        '--skip-check',
        action='store_true',
        help='do not check that the two paths agree (not recommended)')
    parser.add_argument(
        '--profile',
        metavar='DIR',
        help='also write a torch.profiler table of the timed steps of each '
        'phase into DIR')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. model.clip.arch=ViT-B-32')
    parser.add_argument('--out', help='write the results as json here')
    parser.add_argument(
        '--markdown',
        action='store_true',
        help='send the progress log to stderr, so that stdout holds only '
        'the markdown tables (e.g. `--markdown > table.md`)')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    if not args.config and not args.preset:
        parser.error('give a config or --preset')
    if args.config and args.preset:
        parser.error('give either a config or --preset, not both')
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
        bases = [dict(PRESETS[n], name=n) for n in names]
        for base in bases:
            base['config'] = osp.join(REPO_ROOT, base['config'])
    else:
        name = osp.splitext(osp.basename(args.config))[0]
        bases = [dict(config=args.config, name=name, title=name)]
    settings = []
    for base in bases:
        setting = dict(
            name=base['name'],
            title=base['title'],
            config=base['config'],
            cfg_options=dict(base.get('cfg_options', {})),
            mode=base.get('mode', 'both'),
            classes=base.get('classes', 50),
            train_batch=base.get('train_batch'),
            test_batch=base.get('test_batch'),
            images=base.get('images'),
            warmup=base.get('warmup', 1),
            steps=base.get('steps', 3),
            speed_target=base.get('speed_target'),
            memory_target=base.get('memory_target'),
            device=args.device,
            amp=args.amp,
            threads=args.threads or os.cpu_count() or 1,
            pretrained=args.pretrained,
            seed=args.seed,
            profile=args.profile)
        setting['cfg_options'].update(args.cfg_options or {})
        if args.mode:
            setting['mode'] = args.mode
        for key in ('classes', 'images', 'warmup', 'steps'):
            if getattr(args, key) is not None:
                setting[key] = getattr(args, key)
        if args.batch is not None:
            setting['train_batch'] = setting['test_batch'] = args.batch
        settings.append(setting)
    return settings


# ----------------------------------------------------------------------
# the model and the inputs
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
    names += [f'object_{i}' for i in range(len(names), num)]
    return names


def build_model(setting: dict) -> Tuple[nn.Module, Config]:
    """The config's ``PromptClassifier`` with random weights (unless
    ``pretrained``) and ``classes`` classes, in eval mode on the device."""
    cfg = Config.fromfile(setting['config'])
    if setting['cfg_options']:
        cfg.merge_from_dict(setting['cfg_options'])
    init_default_scope(cfg.get('default_scope', 'mmprompt') or 'mmprompt')
    model_cfg = cfg.model.copy()
    if model_cfg.get('type') != 'PromptClassifier':
        raise ValueError(f"{setting['config']}: the model is a "
                         f"{model_cfg.get('type')!r}; {PROG} measures "
                         'PromptClassifier models (CoOp, CoCoOp, zero-shot)')
    if not setting['pretrained']:
        model_cfg.clip = dict(model_cfg.clip, pretrained=None)
    model_cfg.pop('class_names', None)
    torch.manual_seed(setting['seed'])
    model = MODELS.build(model_cfg)
    model.set_class_names(class_names(setting['classes']))
    model.to(setting['device'])
    model.eval()
    return model, cfg


def _batch_size(cfg: Config, key: str, default: int) -> int:
    loader = cfg.get(key) or {}
    return int(loader.get('batch_size', default) or default)


def resolve_sizes(setting: dict, cfg: Config) -> dict:
    """Fill in the config's batch sizes where the setting has none."""
    setting = dict(setting)
    if setting['train_batch'] is None:
        setting['train_batch'] = _batch_size(cfg, 'train_dataloader', 1)
    if setting['test_batch'] is None:
        setting['test_batch'] = _batch_size(cfg, 'test_dataloader', 100)
    if setting['images'] is None:
        setting['images'] = setting['test_batch']
    setting['test_batch'] = min(setting['test_batch'], setting['images'])
    return setting


def image_size(model: nn.Module) -> int:
    """Side of the square images the CLIP's image tower takes."""
    size = getattr(model.clip.model.visual, 'image_size', 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def random_inputs(model: nn.Module, num: int, num_classes: int, device: str,
                  seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``num`` random (already normalised) images and labels."""
    gen = torch.Generator().manual_seed(seed)
    size = image_size(model)
    images = torch.randn(num, 3, size, size, generator=gen)
    labels = torch.randint(num_classes, (num, ), generator=gen)
    return images.to(device), labels.to(device)


def head_kind(model: nn.Module) -> str:
    """``'cocoop'``, ``'coop'`` or ``'zeroshot'``."""
    name = type(model.head).__name__
    kinds = dict(CoCoOpHead='cocoop', CoOpHead='coop', ZeroShotHead='zeroshot')
    if name not in kinds:
        raise ValueError(f'{PROG} knows the heads {sorted(kinds)}, not '
                         f'{name}')
    return kinds[name]


# ----------------------------------------------------------------------
# the straightforward path
# ----------------------------------------------------------------------
class Straightforward(nn.Module):
    """The original CoOp / CoCoOp / zero-shot computation on the weights of
    an mmprompt model, with open_clip's modules only.

    Prompts are tokenized from their text (``"<prefix> <name>."``), embedded
    to the full context length (77) and the learned context is put in place
    of the prefix tokens; the text tower runs over all 77 positions, as in
    CoOp's ``TextEncoder``::

        x = prompts + positional_embedding       # (N, 77, W)
        x = ln_final(transformer(x, causal mask))
        g = x[arange(N), tokens.argmax(-1)] @ text_projection

    CoCoOp calls it once per image on that image's K prompts; CoOp and
    zero-shot call it on the K prompts at every forward.

    Args:
        model (PromptClassifier): The mmprompt model whose weights (CLIP,
            context, Meta-Net) are used, shared not copied.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.kind = head_kind(model)
        clip = model.clip
        # open_clip's CLIP, not registered: it is frozen and shared.
        object.__setattr__(self, 'clip_model', clip.model)
        tower = clip.model
        if not hasattr(tower, 'transformer'):
            tower = clip.model.text  # CustomTextCLIP
        object.__setattr__(self, 'tower', tower)
        pool = getattr(tower, 'text_pool_type',
                       getattr(tower, 'pool_type', 'argmax'))
        if pool != 'argmax':
            raise NotImplementedError(
                f'the straightforward path pools at the argmax token as '
                f"CLIP; {clip.arch!r} pools with {pool!r}")
        self.tokenizer = clip.tokenizer
        head = model.head
        readable = [n.replace('_', ' ') for n in head.class_names]
        if self.kind == 'zeroshot':
            self.templates = list(head.templates)
            self.readable = readable
            return
        learner = head.prompt_learner
        # Shared with the mmprompt model: the same trainable tensors.
        self.ctx = learner.ctx
        self.meta_net = getattr(learner, 'meta_net', None)
        self.position = getattr(learner, 'class_token_position', 'end')
        self.name_lens = [len(self.tokenizer.encode(n)) for n in readable]
        prompts = [f'{learner.prompt_prefix} {n}.' for n in readable]
        tokens = self.tokenizer(prompts).to(clip.device)  # (K, 77)
        with torch.no_grad():
            embedding = tower.token_embedding(tokens).to(self.dtype)
        n_ctx = self.ctx.shape[-2]
        self.register_buffer('tokens', tokens, persistent=False)
        self.register_buffer('token_prefix', embedding[:, :1], False)
        self.register_buffer('token_suffix', embedding[:, 1 + n_ctx:], False)

    @property
    def dtype(self) -> torch.dtype:
        return self.tower.transformer.get_cast_dtype()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image features ``(B, D)``."""
        visual = self.clip_model.visual
        dtype = next(p for p in visual.parameters() if p.dim() > 1).dtype
        features = self.clip_model.encode_image(images.to(dtype))
        return features / features.norm(dim=-1, keepdim=True)

    def encode_text(self, prompts: torch.Tensor,
                    tokens: torch.Tensor) -> torch.Tensor:
        """CoOp's ``TextEncoder``: ``(N, 77, W)`` -> ``(N, D)``."""
        tower = self.tower
        dtype = self.dtype
        x = prompts.to(dtype) + tower.positional_embedding.to(dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask)
        x = tower.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(-1)]
        proj = tower.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj

    def coop_prompts(self) -> torch.Tensor:
        """CoOp's ``PromptLearner.forward``: ``(K, 77, W)``."""
        prefix, suffix = self.token_prefix, self.token_suffix
        num_classes = prefix.shape[0]
        ctx = self.ctx
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(num_classes, -1, -1)
        if self.position == 'end':
            return torch.cat([prefix, ctx, suffix], dim=1)
        half = ctx.shape[1] // 2
        prompts = []
        for i, name_len in enumerate(self.name_lens):
            name = suffix[i:i + 1, :name_len]
            rest = suffix[i:i + 1, name_len:]
            ctx_i = ctx[i:i + 1]
            if self.position == 'middle':
                parts = [
                    prefix[i:i + 1], ctx_i[:, :half], name, ctx_i[:, half:],
                    rest
                ]
            else:
                parts = [prefix[i:i + 1], name, ctx_i, rest]
            prompts.append(torch.cat(parts, dim=1))
        return torch.cat(prompts, dim=0)

    def zero_shot_features(self) -> torch.Tensor:
        """Normalised (and template-averaged) features ``(K, D)``."""
        per_template = []
        for template in self.templates:
            tokens = self.tokenizer([
                template.format(n) for n in self.readable
            ]).to(self.tower.positional_embedding.device)
            embedding = self.tower.token_embedding(tokens)
            per_template.append(
                F.normalize(self.encode_text(embedding, tokens), dim=-1))
        if len(per_template) == 1:
            return per_template[0]
        return F.normalize(torch.stack(per_template).mean(0), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)``."""
        scale = self.clip_model.logit_scale.exp()
        image_features = self.encode_image(images)
        if self.kind == 'zeroshot':
            text_features = self.zero_shot_features()
            return scale * image_features @ text_features.t()
        if self.kind == 'coop':
            text_features = self.encode_text(self.coop_prompts(), self.tokens)
            text_features = text_features / text_features.norm(
                dim=-1, keepdim=True)
            return scale * image_features @ text_features.t()
        # CoCoOp: the prompts of every image, then one text call per image.
        dtype = self.meta_net.linear1.weight.dtype
        bias = self.meta_net(image_features.to(dtype)).unsqueeze(1)
        ctx_shifted = self.ctx.unsqueeze(0) + bias  # (B, M, W)
        prefix, suffix = self.token_prefix, self.token_suffix
        num_classes = prefix.shape[0]

        def prompts_of(ctx_i: torch.Tensor) -> torch.Tensor:  # (K, 77, W)
            ctx_i = ctx_i.unsqueeze(0).expand(num_classes, -1, -1)
            return torch.cat([prefix, ctx_i, suffix], dim=1)

        prompts = torch.stack([prompts_of(c) for c in ctx_shifted])
        logits = []
        for prompts_i, feature_i in zip(prompts, image_features):
            text_features = self.encode_text(prompts_i, self.tokens)
            text_features = text_features / text_features.norm(
                dim=-1, keepdim=True)
            logits.append(scale * feature_i @ text_features.t())
        return torch.stack(logits)


# ----------------------------------------------------------------------
# one step of each path
# ----------------------------------------------------------------------
def _autocast(setting: dict):
    if not setting['amp']:
        return contextlib.nullcontext()
    device = setting['device']
    dtype = torch.bfloat16 if device == 'cpu' else torch.float16
    return torch.autocast(device_type=device, dtype=dtype)


def _data_samples(labels: torch.Tensor) -> List[DataSample]:
    return [
        DataSample().set_gt_label(int(label)).to(labels.device)
        for label in labels
    ]


def logits_fn(path: str, model: nn.Module,
              straight: Optional[nn.Module]) -> Callable:
    """``images -> logits`` of a path."""
    if path == 'mmprompt':
        return lambda images: model(images, mode='tensor')
    return straight


def loss_fn(path: str, model: nn.Module,
            straight: Optional[nn.Module]) -> Callable:
    """``(images, labels) -> loss`` of a path."""
    if path == 'mmprompt':

        def loss(images, labels):
            losses = model(images, _data_samples(labels), mode='loss')
            return model.parse_losses(losses)[0]

        return loss
    return lambda images, labels: F.cross_entropy(
        straight(images).float(), labels)


def trainable(model: nn.Module) -> List[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def check_agreement(model: nn.Module, straight: nn.Module, setting: dict,
                    modes: Sequence[str]) -> dict:
    """Assert that both paths give the same logits (and, for training, the
    same loss and gradients) on a small batch, within ``RTOL`` of the
    largest value.

    Returns:
        dict: The largest relative differences found.
    """
    num = min(2, setting['train_batch'], setting['test_batch'])
    images, labels = random_inputs(model, num, setting['classes'],
                                   setting['device'], setting['seed'] + 1)
    found = {}

    def compare(name, fast, slow):
        fast, slow = fast.detach().float(), slow.detach().float()
        if fast.shape != slow.shape:
            raise AssertionError(f'{name}: shapes differ, mmprompt '
                                 f'{tuple(fast.shape)}, straightforward '
                                 f'{tuple(slow.shape)}')
        scale = slow.abs().max().clamp_min(1e-12)
        diff = float((fast - slow).abs().max() / scale)
        found[name] = diff
        if not diff <= RTOL:
            raise AssertionError(
                f'{name} of mmprompt and of the straightforward path differ '
                f'by {diff:.2e} of their largest value (allowed {RTOL}); '
                'the benchmark would compare different computations')

    model.eval()
    with torch.no_grad():
        compare('test logits', model(images, mode='tensor'), straight(images))
    if 'train' in modes:
        params = trainable(model)
        model.train()
        grads = []
        for path in PATHS:
            for p in params:
                p.grad = None
            loss = loss_fn(path, model, straight)(images, labels)
            loss.backward()
            grads.append((loss, [p.grad.clone() for p in params]))
        for p in params:
            p.grad = None
        model.eval()
        compare('train loss', grads[0][0], grads[1][0])
        for i, (fast, slow) in enumerate(zip(grads[0][1], grads[1][1])):
            compare(f'gradient {i}', fast, slow)
    # mmprompt's CoOp keeps eval text features; do not let them leak.
    model.set_class_names(model.class_names)
    return found


# ----------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------
class PeakMemory:
    """Peak memory above the level at :meth:`start`.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the process's peak
    resident set (``VmHWM``), reset to the current one at :meth:`start`
    through ``/proc/self/clear_refs`` after returning freed heap memory to
    the system (``malloc_trim``); where that is not possible, the peak
    since the process started (``ru_maxrss``).
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.method = ''
        self.base = 0

    @staticmethod
    def _status(key: str) -> Optional[int]:
        try:
            with open('/proc/self/status') as f:
                for line in f:
                    if line.startswith(key + ':'):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    @staticmethod
    def _trim() -> None:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL('libc.so.6').malloc_trim(0)

    def start(self) -> None:
        if self.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            self.method = 'torch.cuda.max_memory_allocated'
            return
        self._trim()
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
            peak = self._status('VmHWM')
        else:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, (peak or 0) - self.base)


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


class _ImageTowerTimer:
    """Seconds spent in the (frozen) image tower: the time of the
    ``encode_image`` calls a path makes, what the rest of a step is
    compared against. mmprompt's is :meth:`OpenCLIP.encode_image`, the
    straightforward path's open_clip's own ``encode_image``."""

    def __init__(self, owner: nn.Module, device: str) -> None:
        self.device = device
        self.seconds = 0.0
        self._owner = owner
        encode = owner.encode_image

        def timed(*args, **kwargs):
            _sync(device)
            start = time.perf_counter()
            try:
                return encode(*args, **kwargs)
            finally:
                _sync(device)
                self.seconds += time.perf_counter() - start

        # An instance attribute in front of the method, removed afterwards.
        object.__setattr__(owner, 'encode_image', timed)

    def remove(self) -> None:
        object.__delattr__(self._owner, 'encode_image')


class _Phase:
    """One path's training step or evaluation, ready to run.

    ``step()`` is what is timed: a training step, or a pass over all the
    evaluation images. ``first()`` is the part of a step whose peak memory
    is the step's: the step itself in training, the first batch of a pass in
    evaluation (every batch holds as many images, and the first one also
    encodes CoOp's text features). ``fresh()`` runs before each step: a new
    evaluation starts without mmprompt's cached CoOp text features (they
    live as long as the class names and the context).
    """

    def __init__(self, model: nn.Module, setting: dict, path: str,
                 mode: str) -> None:
        self.model, self.path, self.mode = model, path, mode
        device = setting['device']
        self.straight = (
            Straightforward(model) if path == 'straightforward' else None)
        if mode == 'train':
            self.batch = setting['train_batch']
            self.images_per_step = self.batch
            images, labels = random_inputs(model, self.batch,
                                           setting['classes'], device,
                                           setting['seed'])
            params = trainable(model)
            if not params:
                raise ValueError('the model has nothing to train '
                                 '(zero-shot); use --mode test')
            optimizer = torch.optim.SGD(params, **SGD)
            loss = loss_fn(path, model, self.straight)

            def step():
                optimizer.zero_grad()
                with _autocast(setting):
                    value = loss(images, labels)
                value.backward()
                optimizer.step()

            self.step = self.first = self.warm = step
        else:
            self.batch = setting['test_batch']
            self.images_per_step = setting['images']
            images, _ = random_inputs(model, setting['images'],
                                      setting['classes'], device,
                                      setting['seed'])
            forward = logits_fn(path, model, self.straight)
            batches = list(images.split(self.batch))

            def run(chunks):
                with torch.no_grad(), _autocast(setting):
                    for chunk in chunks:
                        forward(chunk)

            self.step = lambda: run(batches)
            self.first = lambda: run(batches[:1])
            # A small batch: enough for the one-off costs of a first call,
            # without a whole straightforward text pass more.
            self.warm = lambda: run([batches[0][:2]])

    def warm_up(self, count: int) -> None:
        """Pay the first calls' one-off costs (lazy imports, kernel caches)
        outside any measurement."""
        for _ in range(count):
            self.fresh()
            self.warm()

    def fresh(self) -> None:
        # train()/eval() too: the two paths share one model.
        self.model.train(self.mode == 'train')
        if self.mode == 'test':
            self.model.set_class_names(self.model.class_names)

    def image_tower(self) -> nn.Module:
        """The object whose ``encode_image`` this path calls."""
        return self.model.clip if self.straight is None else self.straight


def measure_memory(model: nn.Module, setting: dict, path: str,
                   mode: str) -> dict:
    """Peak memory of one path's step (see :class:`_Phase`) after
    ``warmup``, above the loaded model and data."""
    phase = _Phase(model, setting, path, mode)
    phase.warm_up(setting['warmup'])
    _sync(setting['device'])
    # From here: what a step needs once the model and the data are in
    # memory and the first call's one-off costs (lazy imports, kernel
    # caches) are paid.
    memory = PeakMemory(setting['device'])
    phase.fresh()
    memory.start()
    phase.first()
    peak = memory.peak()
    return dict(
        setting=setting['name'],
        path=path,
        mode=mode,
        peak_mib=peak / 2**20,
        memory_method=memory.method)


def measure_time(model: nn.Module, setting: dict, paths: Sequence[str],
                 mode: str) -> Dict[str, dict]:
    """Time ``steps`` rounds of one phase after ``warmup``, the paths'
    steps interleaved (one of each per round), so that a slow spell of a
    shared machine slows both paths rather than one.

    Returns:
        dict: For each path ``images_per_s`` (from the median time),
        ``seconds`` (each timed step), ``cpu_seconds`` and
        ``image_tower_seconds``.
    """
    device = setting['device']
    phases = {path: _Phase(model, setting, path, mode) for path in paths}
    for phase in phases.values():
        phase.warm_up(setting['warmup'])
    timings = {
        path: dict(seconds=[], cpu_seconds=[], image_tower_seconds=[])
        for path in paths
    }
    for _ in range(setting['steps']):
        for path, phase in phases.items():
            phase.fresh()
            timer = _ImageTowerTimer(phase.image_tower(), device)
            _sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                phase.step()
                _sync(device)
            finally:
                timer.remove()
            timing = timings[path]
            timing['seconds'].append(time.perf_counter() - start)
            timing['cpu_seconds'].append(time.process_time() - cpu_start)
            timing['image_tower_seconds'].append(timer.seconds)
    if setting.get('profile'):
        for path, phase in phases.items():
            _profile(phase, setting)
    results = {}
    for path, phase in phases.items():
        timing = timings[path]
        median = statistics.median(timing['seconds'])
        results[path] = dict(
            setting=setting['name'],
            path=path,
            mode=mode,
            images_per_s=phase.images_per_step / median,
            median_s=median,
            batch=phase.batch,
            images=phase.images_per_step,
            threads=torch.get_num_threads(),
            **timing)
    return results


def _profile(phase: _Phase, setting: dict) -> None:
    """A ``torch.profiler`` table of one more step of a path."""
    device = setting['device']
    phase.fresh()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        phase.step()
        _sync(device)
    os.makedirs(setting['profile'], exist_ok=True)
    sort = 'self_cuda_time_total' if device == 'cuda' else \
        'self_cpu_time_total'
    table = profiler.key_averages().table(sort_by=sort, row_limit=25)
    out = osp.join(setting['profile'],
                   f"{setting['name']}_{phase.mode}_{phase.path}.txt")
    with open(out, 'w') as f:
        f.write(table)
    print_log(f'profile written to {out}', logger='current')


def describe(model: nn.Module) -> dict:
    """What was measured, for the table."""
    clip = model.clip
    info = dict(arch=clip.arch, method=head_kind(model))
    learner = getattr(model.head, 'prompt_learner', None)
    if learner is not None:
        info['n_ctx'] = learner.n_ctx
        info['max_prompt_tokens'] = learner.max_eot + 1
    return info


# ----------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------
def _modes(setting: dict, kind: str) -> List[str]:
    modes = list(MODES) if setting['mode'] == 'both' else [setting['mode']]
    if kind == 'zeroshot':
        if modes == ['train']:
            raise ValueError('a zero-shot model has nothing to train; use '
                             '--mode test')
        modes = ['test']
    return modes


def _setup(setting: dict) -> None:
    torch.set_num_threads(setting['threads'])


def run_worker(spec_file: str) -> None:
    """Measure the peak memory of one path and phase (in a fresh
    subprocess)."""
    with open(spec_file) as f:
        spec = json.load(f)
    setting = spec['setting']
    _setup(setting)
    model, _ = build_model(setting)
    result = measure_memory(model, setting, spec['path'], spec['mode'])
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
                f'measuring {path} {mode} of {setting["name"]} failed '
                f'(exit {proc.returncode}):\n{proc.stderr[-4000:]}')
        with open(spec['result']) as f:
            return json.load(f)


def run_setting(setting: dict, paths: Sequence[str], isolate: bool,
                check: bool) -> dict:
    """Check agreement, then measure every path and phase of a setting."""
    _setup(setting)
    model, cfg = build_model(setting)
    setting = resolve_sizes(setting, cfg)
    kind = head_kind(model)
    modes = _modes(setting, kind)
    record = dict(setting, **describe(model), modes=modes)
    if check:
        start = time.perf_counter()
        record['agreement'] = check_agreement(model, Straightforward(model),
                                              setting, modes)
        print_log(
            f"{setting['name']}: both paths agree "
            f"({time.perf_counter() - start:.1f} s to check): "
            f"{record['agreement']}",
            logger='current')
    results = []
    for mode in modes:
        memory = {}
        for path in paths:
            print_log(
                f"{setting['name']}: peak memory of {path} {mode}...",
                logger='current')
            memory[path] = (
                _in_subprocess(setting, path, mode)
                if isolate else measure_memory(model, setting, path, mode))
        print_log(
            f"{setting['name']}: timing {' and '.join(paths)} {mode}, "
            'interleaved...',
            logger='current')
        timed = measure_time(model, setting, paths, mode)
        for path in paths:
            result = dict(timed[path], **memory[path])
            print_log(
                f"{setting['name']} {mode} {path}: "
                f"{result['images_per_s']:.3g} img/s, "
                f"{result['peak_mib']:.0f} MiB",
                logger='current')
            results.append(result)
    record['results'] = results
    record['rows'] = compare_paths(results)
    return record


def compare_paths(results: List[dict]) -> List[dict]:
    """One row per phase with both paths and their ratios."""
    rows = []
    for mode in MODES:
        by_path = {r['path']: r for r in results if r['mode'] == mode}
        if not by_path:
            continue
        row = dict(mode=mode)
        for path, result in by_path.items():
            row[f'{path}_images_per_s'] = result['images_per_s']
            row[f'{path}_peak_mib'] = result['peak_mib']
        if len(by_path) == len(PATHS):
            fast, slow = by_path['mmprompt'], by_path['straightforward']
            row['speedup'] = fast['images_per_s'] / slow['images_per_s']
            # The ratio within each round of interleaved steps (both paths
            # process the same images per step).
            row['round_speedups'] = [
                s / f for f, s in zip(fast['seconds'], slow['seconds'])
            ]
            row['memory_ratio'] = (
                fast['peak_mib'] /
                slow['peak_mib'] if slow['peak_mib'] > 0 else None)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------
def machine() -> dict:
    """Where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
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
        info['load_average'] = os.getloadavg()[0]
    return info


def _fmt(value: Optional[float], digits: int = 3) -> str:
    if value is None:
        return '-'
    if abs(value) >= 10**digits:
        return f'{value:.0f}'
    return f'{value:.{digits}g}'


def _ratio(value: Optional[float], target: Optional[float],
           at_least: bool) -> str:
    if value is None:
        return '-'
    text = f'{value:.2f}×' if not at_least else f'{value:.1f}×'
    if target is None:
        return text
    met = value >= target if at_least else value <= target
    sign = '≥' if at_least else '≤'
    goal = f'{target:g}×' if at_least else f'{target:.2f}×'
    return f"{text} ({sign}{goal}: {'met' if met else '**not met**'})"


def _rounds(ratios: Optional[List[float]]) -> str:
    if not ratios:
        return '-'
    low, high = min(ratios), max(ratios)
    return f'{low:.1f}×' if f'{low:.1f}' == f'{high:.1f}' else \
        f'{low:.1f}–{high:.1f}×'


def _name(record: dict) -> str:
    if record['title'] == record['name']:
        return f"`{record['name']}`"
    return f"`{record['name']}`: {record['title']}"


def markdown(records: List[dict], info: dict) -> str:
    """The results as markdown: a header line saying where and how they were
    measured, the comparison table and the seconds of each timed step."""
    first = records[0]
    load = info.get('load_average')
    lines = [
        f"Measured {info['date']} on {info['cpu']} ({info['nproc']} cores"
        f"{', load %.1f at the end' % load if load is not None else ''}), "
        f"{first['device']}, {first['threads']} torch threads, "
        f"torch {info['torch']}, {'amp' if first['amp'] else 'fp32'}, "
        f"{'pretrained' if first['pretrained'] else 'random'} weights. "
        'img/s from the median timed step (training) or pass over the '
        'images (evaluation), the paths timed in turn in one process; '
        '"per round": the lowest and highest ratio of two neighbouring '
        'steps; peak memory of one step above the loaded model and data, '
        'each path in a fresh process.', '',
        '| setting | phase | K | batch | images | mmprompt img/s | '
        'straightforward img/s | speed-up | per round | mmprompt peak MiB | '
        'straightforward peak MiB | memory ratio |',
        '|---|---|--:|--:|--:|--:|--:|---|---|--:|--:|---|'
    ]
    for record in records:
        for row in record['rows']:
            train = row['mode'] == 'train'
            batch = record['train_batch'] if train else record['test_batch']
            images = f"{batch}/step" if train else str(record['images'])
            memory_target = record['memory_target'] if train else None
            lines.append(
                f"| {_name(record)} | {row['mode']} | "
                f"{record['classes']} | {batch} | {images} | "
                f"{_fmt(row.get('mmprompt_images_per_s'))} | "
                f"{_fmt(row.get('straightforward_images_per_s'))} | "
                f"{_ratio(row.get('speedup'), record['speed_target'], True)}"
                f" | {_rounds(row.get('round_speedups'))}"
                f" | {_fmt(row.get('mmprompt_peak_mib'), 4)} | "
                f"{_fmt(row.get('straightforward_peak_mib'), 4)} | "
                f"{_ratio(row.get('memory_ratio'), memory_target, False)} |")
    lines += [
        '', '| setting | phase | path | warm-up | timed s (median, all) | '
        'image tower s | CPU s |', '|---|---|---|--:|---|--:|--:|'
    ]
    for record in records:
        for result in record['results']:
            train = result['mode'] == 'train'
            warmup = (f"{record['warmup']} step"
                      if train else f"{record['warmup']} batch")
            timed = ', '.join(f'{s:.3g}' for s in result['seconds'])
            lines.append(
                f"| {_name(record)} | {result['mode']} | {result['path']} | "
                f"{warmup} | {result['median_s']:.3g} ({timed}) | "
                f"{statistics.median(result['image_tower_seconds']):.3g} | "
                f"{statistics.median(result['cpu_seconds']):.3g} |")
    return '\n'.join(lines)


def _log_to_stderr() -> None:
    logger = MMLogger.get_current_instance()
    for handler in logger.handlers:
        if (isinstance(handler, logging.StreamHandler)
                and getattr(handler, 'stream', None) is sys.stdout):
            handler.setStream(sys.stderr)


def _write(path: str, info: dict, records: List[dict]) -> None:
    with open(path, 'w') as f:
        json.dump(dict(machine=info, records=records), f, indent=2)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    """Run the benchmark; returns one record per measured setting.

    The json (``--out``) is rewritten after every setting, so a long
    ``--preset all`` keeps what it measured. A setting that fails is
    reported and skipped; the exit status is then 1.
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
            records.append(
                run_setting(setting, args.paths, args.isolate,
                            not args.skip_check))
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
    if not args.markdown:
        print_log(json.dumps(info), logger='current')
    if records:
        print(markdown(records, info))
    if failed:
        print('\nFailed:\n' + '\n'.join(f'- {line}' for line in failed))
        sys.exit(1)
    return records


if __name__ == '__main__':
    main()
