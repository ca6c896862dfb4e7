# Copyright (c) mmprompt contributors. All rights reserved.
"""The per-dataset template tables and their errors."""
import pytest

from mmprompt.models.heads import (DATASET_TEMPLATES, KGCOOP_TEMPLATES,
                                   TEMPLATE_TABLES, resolve_templates)

# KgCoOp's CUSTOM_TEMPLATES (htyao89/KgCoOp trainers/kgcoop.py at c43ccc3),
# as the golden README lists it.
KGCOOP = {
    'OxfordPets': 'a photo of a {}, a type of pet.',
    'OxfordFlowers': 'a photo of a {}, a type of flower.',
    'FGVCAircraft': 'a photo of a {}, a type of aircraft.',
    'DescribableTextures': 'a photo of a {}, a type of texture.',
    'EuroSAT': 'a centered satellite photo of {}.',
    'StanfordCars': 'a photo of a {}.',
    'Food101': 'a photo of {}, a type of food.',
    'SUN397': 'a photo of a {}.',
    'Caltech101': 'a photo of a {}.',
    'UCF101': 'a photo of a person doing {}.',
    'ImageNet': 'a photo of a {}.',
    'ImageNetSketch': 'a photo of a {}.',
    'ImageNetV2': 'a photo of a {}.',
    'ImageNetA': 'a photo of a {}.',
    'ImageNetR': 'a photo of a {}.',
}


def test_kgcoop_table_is_the_originals():
    assert KGCOOP_TEMPLATES == KGCOOP
    assert TEMPLATE_TABLES['kgcoop'] is KGCOOP_TEMPLATES
    # CoOp's table differs in DTD only.
    differ = {k for k in KGCOOP if KGCOOP[k] != DATASET_TEMPLATES[k]}
    assert differ == {'DescribableTextures'}
    assert resolve_templates('DescribableTextures', 'kgcoop') == [
        'a photo of a {}, a type of texture.'
    ]
    assert resolve_templates('DescribableTextures') == ['{} texture.']


@pytest.mark.parametrize('templates,table,match', [
    ('Textures', 'kgcoop',
     "templates='Textures' is not a template .* a dataset of the 'kgcoop' "
     r"table \(\['Caltech101'"),
    ('EuroSAT', 'kgcop', "table must be one of .*'kgcoop'.* got 'kgcop'"),
    ([], 'kgcoop', 'templates is empty'),
    (None, 'kgcoop', 'templates is None'),
    (['a photo of a {}.', 'a photo'], 'coop',
     "every template needs a \"{}\" for the class name, got \\['a photo'\\]"),
    ('a {} of a {}', 'coop', "template 'a {} of a {}' must take the class"),
    (['a photo of {name}'], 'coop', 'every template needs'),
    ('a {} photo of {name}', 'coop', "template 'a {} photo of {name}'"),
])
def test_bad_templates_are_named(templates, table, match):
    with pytest.raises(ValueError, match=match):
        resolve_templates(templates, table)
