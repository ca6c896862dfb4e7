# Copyright (c) mmprompt contributors. All rights reserved.
"""The original ProGrad's outputs (``../shared/golden/prograd``) and the
mmprompt model that must reproduce them, for the head and optimizer-wrapper
tests.

Each variant's model is built from its ``options.json`` as a user would
configure it (``ProGradHead`` with the dataset's name as ``templates``) and
loaded with the original's own ``model.pth.tar-10`` through the checkpoint
converter (``load_checkpoint_file`` + ``checkpoint_filter_fn``).
"""
import json
from pathlib import Path
from typing import Dict, List

import torch
from mmpretrain.structures import DataSample

from mmprompt.engine import ProGradOptimWrapper
from mmprompt.registry import MODELS
from mmprompt.utils import checkpoint_filter_fn, load_checkpoint_file

ARCHS = ('vit', 'rn')
VARIANTS = ('prograd_template-init16', 'prograd_random8_front_l0.8_T2',
            'prograd_csc4')
#: The conflicting case (projected) and the aligned one (kept).
CASES = ('', '_aligned')
#: The rule's bound: relative to the largest value of the tensor.
RTOL = 1e-5


class Golden:
    """One variant of one tiny CLIP: its files and options."""

    def __init__(self, golden_dir: Path, arch: str, variant: str) -> None:
        self.arch = arch
        self.clip_root = golden_dir / f'tiny-{arch}'
        self.root = golden_dir / 'prograd' / f'tiny-{arch}' / variant
        self.spec = json.loads((self.root / 'options.json').read_text())
        self.options = self.spec['options']
        self.inputs = self.load_file(self.clip_root / 'inputs.pt')

    @staticmethod
    def load_file(path: Path):
        return torch.load(path, weights_only=True)

    def load(self, name: str):
        """A file of the variant, e.g. ``'grads_aligned.pt'``."""
        return self.load_file(self.root / name)

    @property
    def images(self) -> torch.Tensor:
        return self.inputs['images']

    @property
    def class_names(self) -> List[str]:
        return self.inputs['classnames']

    def head_cfg(self, **overrides) -> dict:
        """``ProGradHead``'s config as a user writes it for this run."""
        o = self.options
        learner = dict(
            type='ProGradPromptLearner',
            n_ctx=o['n_ctx'],
            ctx_init=o['ctx_init'],
            csc=o['csc'],
            class_token_position=o['class_token_position'])
        if o['csc']:
            learner['num_classes'] = len(self.class_names)
        return dict(
            dict(
                type='ProGradHead',
                prompt_learner=learner,
                templates=self.spec['dataset'],
                temperature=o['T']), **overrides)

    def model(self, load: bool = True, **head):
        """The model, with the original's checkpoint loaded."""
        model = MODELS.build(
            dict(
                type='PromptClassifier',
                clip=dict(
                    type='OpenCLIP',
                    arch=f'mmprompt-tiny-{self.arch}',
                    pretrained=str(self.clip_root / 'openai_state_dict.pt')),
                head=self.head_cfg(**head),
                class_names=self.class_names))
        if load:
            original = load_checkpoint_file(
                str(self.root / 'model.pth.tar-10'))
            state = checkpoint_filter_fn(original, model)
            result = model.load_state_dict(state, strict=False)
            assert not result.unexpected_keys, result
            assert [
                k for k in result.missing_keys
                if not k.endswith('_extra_state')
            ] == [], result
        return model

    def samples(self, case: str = '') -> List[DataSample]:
        labels = self.load(f'train{case}.pt')['labels']
        return [DataSample().set_gt_label(int(label)) for label in labels]

    def wrapper(self, model, lr: float, **kwargs) -> ProGradOptimWrapper:
        """A fresh SGD as the original's (Dassl's) under ProGrad's
        wrapper with the variant's λ."""
        step = self.load('step.pt')
        optimizer = torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad],
            lr=lr,
            momentum=step['momentum'],
            weight_decay=step['weight_decay'],
            dampening=0,
            nesterov=False)
        return ProGradOptimWrapper(
            optimizer=optimizer, lambda_=self.options['lambda'], **kwargs)


def train_step(model, wrapper, images: torch.Tensor,
               samples: List[DataSample]) -> Dict[str, torch.Tensor]:
    """mmengine's ``train_step`` on already normalised images (the data
    preprocessor left out): forward in the wrapper's context, the model's
    ``parse_losses``, the wrapper's ``update_params``."""
    model.train()
    with wrapper.optim_context(model):
        losses = model(images, samples, mode='loss')
    parsed, log_vars = model.parse_losses(losses)
    wrapper.update_params(parsed)
    return log_vars


def assert_rel(actual: torch.Tensor,
               expected: torch.Tensor,
               what: str,
               rtol: float = RTOL) -> float:
    """``max |actual - expected| <= rtol * max |expected|``."""
    actual = torch.as_tensor(actual).detach().float()
    expected = torch.as_tensor(expected).detach().float()
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    error = float((actual - expected).abs().max() /
                  expected.abs().max().clamp_min(1e-30))
    assert error <= rtol, f'{what}: relative error {error:.2e} > {rtol}'
    return error
