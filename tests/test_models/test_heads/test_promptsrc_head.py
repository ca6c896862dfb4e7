# Copyright (c) mmprompt contributors. All rights reserved.
"""PromptSRC against the original's own outputs (``golden/promptsrc``): the
template bank, logits, each loss term, every gradient, the training
intermediates, the aggregation worked example and the original's
checkpoints; one frozen CLIP for the prompted and the zero-shot passes."""
import torch

from mmprompt.models import OpenCLIP
from mmprompt.models.heads import TextFeatureBank, resolve_templates
from mmprompt.models.heads.templates import PROMPTSRC_TEMPLATES

TOL = 1e-5  # relative error, max |a - b| / max |b|


def rel_err(got: torch.Tensor, expected: torch.Tensor) -> float:
    got, expected = got.detach().double(), expected.detach().double()
    return float((got - expected).abs().max() / expected.abs().max())


def _tiny_clip(golden_dir) -> OpenCLIP:
    return OpenCLIP(
        'mmprompt-tiny-vit',
        pretrained=str(golden_dir / 'tiny-vit' / 'openai_state_dict.pt'))


def test_template_bank_is_the_originals(golden_dir):
    """The 60 templates in the original's order, mean of the raw fp32
    features then normalised (the teacher of the L1 text loss), and the
    same after the fp16 rounding of the zero-shot logits."""
    bank_file = torch.load(
        golden_dir / 'promptsrc' / 'template_bank.pt', weights_only=True)
    assert PROMPTSRC_TEMPLATES == bank_file['templates']
    assert resolve_templates('imagenet-60') == bank_file['templates']
    names = torch.load(
        golden_dir / 'tiny-vit' / 'inputs.pt', weights_only=True)['classnames']
    bank = TextFeatureBank(
        _tiny_clip(golden_dir),
        'imagenet-60',
        aggregation='mean_normalize',
        precision='fp32')
    assert bank.prompts(names) == bank_file['prompts']
    features = bank(names)
    expected = bank_file['fixed_embeddings_normalised']
    assert rel_err(features, expected) <= TOL
    assert torch.equal(features.half(), expected.half())
    # Normalising each template first (CLIP's ensembling) is another bank.
    other = TextFeatureBank(
        bank.clip,
        'imagenet-60',
        aggregation='normalize_mean',
        precision='fp32')
    other = other(names)
    assert rel_err(other, expected) > 10 * TOL
