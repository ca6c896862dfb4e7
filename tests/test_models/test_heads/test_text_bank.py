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
