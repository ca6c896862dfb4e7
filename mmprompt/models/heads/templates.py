# Copyright (c) mmprompt contributors. All rights reserved.
"""Hand-written prompt templates of zero-shot CLIP, as the CoOp papers use.
"""
from typing import List, Sequence, Union

from open_clip.zero_shot_metadata import (OPENAI_IMAGENET_TEMPLATES,
                                          SIMPLE_IMAGENET_TEMPLATES)

__all__ = [
    'DATASET_TEMPLATES', 'KGCOOP_TEMPLATES', 'PROGRAD_TEMPLATES',
    'PROMPTSRC_TEMPLATES', 'TEMPLATE_TABLES', 'TEMPLATE_SETS',
    'resolve_templates'
]

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

# ProGrad's teacher templates (BeierZhu/Prompt-align, trainers/prograd.py
# CUSTOM_TEMPLATES): CoOp's words reordered for OxfordPets, OxfordFlowers,
# FGVCAircraft and Food101, and 'a texture of {}.' for DTD.
PROGRAD_TEMPLATES = dict(
    DATASET_TEMPLATES,
    OxfordPets='a type of pet, a photo of a {}.',
    OxfordFlowers='a type of flower, a photo of a {}.',
    FGVCAircraft='a type of aircraft, a photo of a {}.',
    DescribableTextures='a texture of {}.',
    Food101='a type of food, a photo of {}.')

# KgCoOp's teacher prompts (htyao89/KgCoOp, trainers/kgcoop.py
# CUSTOM_TEMPLATES): CoOp's table except DTD.
KGCOOP_TEMPLATES = dict(
    DATASET_TEMPLATES,
    DescribableTextures='a photo of a {}, a type of texture.')

#: The per-dataset tables by name (``table`` of :func:`resolve_templates`):
#: the methods' originals differ in a few datasets' templates.
TEMPLATE_TABLES = {
    'coop': DATASET_TEMPLATES,
    'kgcoop': KGCOOP_TEMPLATES,
    'prograd': PROGRAD_TEMPLATES,
}

# PromptSRC's teacher templates (muzairkhattak/PromptSRC,
# trainers/imagenet_templates.py IMAGENET_TEMPLATES): 60 of CLIP's 80
# ImageNet templates, in that file's order (the order of the mean of their
# features).
PROMPTSRC_TEMPLATES = [
    'a photo of a {}.',
    'a bad photo of a {}.',
    'a photo of many {}.',
    'a sculpture of a {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of the {}.',
    'a rendering of a {}.',
    'graffiti of a {}.',
    'a bad photo of the {}.',
    'a cropped photo of the {}.',
    'a tattoo of a {}.',
    'the embroidered {}.',
    'a photo of a hard to see {}.',
    'a bright photo of a {}.',
    'a photo of a clean {}.',
    'a photo of a dirty {}.',
    'a dark photo of the {}.',
    'a drawing of a {}.',
    'a photo of my {}.',
    'the plastic {}.',
    'a photo of the cool {}.',
    'a close-up photo of a {}.',
    'a black and white photo of the {}.',
    'a painting of the {}.',
    'a painting of a {}.',
    'a pixelated photo of the {}.',
    'a sculpture of the {}.',
    'a bright photo of the {}.',
    'a cropped photo of a {}.',
    'a plastic {}.',
    'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.',
    'a photo of the {}.',
    'a good photo of the {}.',
    'a rendering of the {}.',
    'a {} in a video game.',
    'a photo of one {}.',
    'a doodle of a {}.',
    'a close-up photo of the {}.',
    'the origami {}.',
    'the {} in a video game.',
    'a sketch of a {}.',
    'a doodle of the {}.',
    'a origami {}.',
    'a low resolution photo of a {}.',
    'the toy {}.',
    'a rendition of the {}.',
    'a photo of the clean {}.',
    'a photo of a large {}.',
    'a rendition of a {}.',
    'a photo of a nice {}.',
    'a photo of a weird {}.',
    'a blurry photo of a {}.',
    'a cartoon {}.',
    'art of a {}.',
    'a sketch of the {}.',
    'a embroidered {}.',
    'a pixelated photo of a {}.',
    'itap of the {}.',
]

# Template sets for prompt ensembling: the 7 templates CoOp's ensemble
# baseline selects from CLIP's 80 ImageNet templates, all 80, and
# PromptSRC's 60.
TEMPLATE_SETS = {
    'imagenet-7': [t('{}') for t in SIMPLE_IMAGENET_TEMPLATES],
    'imagenet-80': [t('{}') for t in OPENAI_IMAGENET_TEMPLATES],
    'imagenet-60': list(PROMPTSRC_TEMPLATES),
}


def _check_template(template: str) -> str:
    try:
        template.format('x')
    except (IndexError, KeyError, ValueError) as err:
        raise ValueError(
            f'template {template!r} must take the class name through one '
            f'"{{}}" and no other braces ({type(err).__name__}: {err})'
        ) from err
    return template


def resolve_templates(templates: Union[str, Sequence[str]],
                      table: str = 'coop') -> List[str]:
    """Turn a template spec into a list of ``'{}'`` templates.

    Args:
        templates (str | Sequence[str]): A template containing ``'{}'``, the
            name of a dataset in the per-dataset ``table``, the name of a
            set in :data:`TEMPLATE_SETS`, ``'<set>+<dataset>'`` (the set
            plus the dataset's template, as CoOp's ensemble baseline on
            datasets other than ImageNet), or a list of templates.
        table (str): Which per-dataset table of :data:`TEMPLATE_TABLES`
            dataset names are read in: ``'coop'`` (CoOp's zero-shot
            baseline, :data:`DATASET_TEMPLATES`) or a method's own, e.g.
            ``'kgcoop'``. Defaults to 'coop'.

    Returns:
        list[str]: The templates.

    Examples:
        >>> resolve_templates('EuroSAT')
        ['a centered satellite photo of {}.']
        >>> len(resolve_templates('imagenet-7+OxfordPets'))
        8
        >>> resolve_templates('DescribableTextures', table='kgcoop')
        ['a photo of a {}, a type of texture.']
    """
    if table not in TEMPLATE_TABLES:
        raise ValueError(f'table must be one of {sorted(TEMPLATE_TABLES)}, '
                         f'got {table!r}')
    datasets = TEMPLATE_TABLES[table]
    if isinstance(templates, str):
        if '{}' in templates:
            return [_check_template(templates)]
        if '+' in templates:
            set_name, dataset = templates.split('+', 1)
            return (resolve_templates(set_name, table) +
                    resolve_templates(dataset, table))
        if templates in TEMPLATE_SETS:
            return list(TEMPLATE_SETS[templates])
        if templates in datasets:
            return [datasets[templates]]
        raise ValueError(
            f'templates={templates!r} is not a template (it has no "{{}}"), '
            f'a dataset of the {table!r} table ({sorted(datasets)}) or a '
            f'template set ({sorted(TEMPLATE_SETS)})')
    if templates is None:
        raise ValueError('templates is None: give a template with "{}", a '
                         'dataset name or a list of templates')
    templates = list(templates)
    if not templates:
        raise ValueError('templates is empty: give at least one template '
                         'with "{}" for the class name')
    bad = [t for t in templates if not isinstance(t, str) or '{}' not in t]
    if bad:
        raise ValueError(f'every template needs a "{{}}" for the class '
                         f'name, got {bad[:3]}')
    return [_check_template(t) for t in templates]
