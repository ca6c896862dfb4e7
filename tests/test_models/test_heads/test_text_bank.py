# Copyright (c) mmprompt contributors. All rights reserved.
"""The text-feature bank against open_clip's own ``encode_text`` of the
formatted templates, aggregated by hand."""
import pytest
import torch
import torch.nn.functional as F

from mmprompt.models import OpenCLIP
from mmprompt.models.heads import TextFeatureBank

NAMES = ['cat', 'sea_lion', 'Apply_Eye_Makeup']
TEMPLATES = ['a photo of a {}.', 'a drawing of the {}!', '{} texture.']


@pytest.fixture(scope='module')
def clip():
    torch.manual_seed(0)
    return OpenCLIP('mmprompt-tiny-vit', pretrained=None)


def raw(clip, template, names):
    with torch.no_grad():
        return clip.model.encode_text(
            clip.tokenizer([template.format(n) for n in names]))


@pytest.mark.parametrize('aggregation', ['normalize_mean', 'mean_normalize'])
def test_aggregations(clip, aggregation):
    readable = [n.replace('_', ' ') for n in NAMES]
    features = torch.stack([raw(clip, t, readable) for t in TEMPLATES])
    if aggregation == 'normalize_mean':
        features = F.normalize(features, dim=-1)
    expected = F.normalize(features.mean(0), dim=-1)
    bank = TextFeatureBank(clip, TEMPLATES, aggregation)
    torch.testing.assert_close(bank(NAMES), expected, rtol=1e-5, atol=1e-6)
    # the two aggregations really differ
    other = 'mean_normalize' if aggregation == 'normalize_mean' else \
        'normalize_mean'
    assert not torch.allclose(
        TextFeatureBank(clip, TEMPLATES, other)(NAMES), expected, atol=1e-6)


def test_one_template_and_underscores(clip):
    bank = TextFeatureBank(clip, 'a photo of a {}.', replace_underscore=False)
    torch.testing.assert_close(
        bank(NAMES), F.normalize(raw(clip, 'a photo of a {}.', NAMES), dim=-1))
    assert bank.prompts(['sea_lion']) == [['a photo of a sea_lion.']]
    assert TextFeatureBank(clip).prompts(['sea_lion'
                                          ]) == [['a photo of a sea lion.']]


def test_recomputed_when_the_classes_change(clip):
    bank = TextFeatureBank(clip, TEMPLATES)
    first = bank(NAMES)
    assert bank(NAMES) is first  # kept
    swapped = bank(NAMES[::-1])
    torch.testing.assert_close(swapped, first.flip(0))
    with pytest.raises(ValueError, match='aggregation must be one of'):
        TextFeatureBank(clip, aggregation='mean')
    with pytest.raises(ValueError, match='class_names is empty'):
        bank([])


def test_fp32_features_from_an_fp16_clip(golden_dir):
    """precision='fp32': the features of the fp32 CLIP from the fp16 one
    (OpenAI's fp16 values), its weights put back as they were."""
    path = str(golden_dir / 'tiny-vit' / 'openai_state_dict.pt')
    fp16 = OpenCLIP('mmprompt-tiny-vit', pretrained=path, precision='fp16')
    fp32 = OpenCLIP('mmprompt-tiny-vit', pretrained=path)
    before = [(p, p.data_ptr(), p.dtype) for p in fp16.model.parameters()]
    found = TextFeatureBank(fp16, TEMPLATES, precision='fp32')(NAMES)
    assert all(p.data_ptr() == ptr and p.dtype == dtype
               for p, ptr, dtype in before)
    expected = TextFeatureBank(fp32, TEMPLATES)(NAMES)
    torch.testing.assert_close(found, expected, rtol=0, atol=0)
    in_fp16 = TextFeatureBank(fp16, TEMPLATES)(NAMES)
    assert not torch.allclose(in_fp16, expected, atol=1e-5)
    with pytest.raises(
            ValueError, match="precision must be None .* or "
            "'fp32', got 'fp16'"):
        TextFeatureBank(fp16, precision='fp16')
