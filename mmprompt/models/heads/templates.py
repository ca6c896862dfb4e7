# Copyright (c) mmprompt contributors. All rights reserved.
"""Hand-written prompt templates of zero-shot CLIP, as the CoOp papers use.
"""
from typing import List, Sequence, Union

from open_clip.zero_shot_metadata import (OPENAI_IMAGENET_TEMPLATES,
                                          SIMPLE_IMAGENET_TEMPLATES)

__all__ = ['DATASET_TEMPLATES', 'TEMPLATE_SETS', 'resolve_templates']

# One template per dataset: CoOp's zero-shot CLIP baseline.
DATASET_TEMPLATES = {
    'OxfordPets': 'a photo of a {}, a type of pet.',
    'OxfordFlowers': 'a photo of a {}, a type of flower.',
    'FGVCAircraft': 'a photo of a {}, a type of aircraft.',
    'DescribableTextures': '{} texture.',
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

# Template sets for prompt ensembling: the 7 templates CoOp's ensemble
# baseline selects from CLIP's 80 ImageNet templates, and all 80.
TEMPLATE_SETS = {
    'imagenet-7': [t('{}') for t in SIMPLE_IMAGENET_TEMPLATES],
    'imagenet-80': [t('{}') for t in OPENAI_IMAGENET_TEMPLATES],
}


def resolve_templates(templates: Union[str, Sequence[str]]) -> List[str]:
    """Turn a template spec into a list of ``'{}'`` templates.

    Args:
        templates (str | Sequence[str]): A template containing ``'{}'``, the
            name of a dataset in :data:`DATASET_TEMPLATES`, the name of a set
            in :data:`TEMPLATE_SETS`, ``'<set>+<dataset>'`` (the set plus the
            dataset's template, as CoOp's ensemble baseline on datasets other
            than ImageNet), or a list of templates.

    Returns:
        list[str]: The templates.

    Examples:
        >>> resolve_templates('EuroSAT')
        ['a centered satellite photo of {}.']
        >>> len(resolve_templates('imagenet-7+OxfordPets'))
        8
    """
    if isinstance(templates, str):
        if '{}' in templates:
            return [templates]
        if '+' in templates:
            set_name, dataset = templates.split('+', 1)
            return resolve_templates(set_name) + resolve_templates(dataset)
        if templates in TEMPLATE_SETS:
            return list(TEMPLATE_SETS[templates])
        if templates in DATASET_TEMPLATES:
            return [DATASET_TEMPLATES[templates]]
        raise ValueError(
            f'templates={templates!r} is not a template (it has no "{{}}"), '
            f'a dataset ({sorted(DATASET_TEMPLATES)}) or a template set '
            f'({sorted(TEMPLATE_SETS)})')
    templates = list(templates)
    if not templates:
        raise ValueError('templates is empty')
    bad = [t for t in templates if not isinstance(t, str) or '{}' not in t]
    if bad:
        raise ValueError(f'every template needs a "{{}}" for the class '
                         f'name, got {bad[:3]}')
    return templates
