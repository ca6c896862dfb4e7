# Copyright (c) mmprompt contributors. All rights reserved.
"""PromptClassifier.dataset_meta: the class names as mmpretrain's APIs
write and read them (``model._dataset_meta``); mmpretrain's own use of it
is tested in tests/test_compat/test_mmpretrain_apis.py."""
import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.datasets import Caltech101 as MMPretrainCaltech101

from mmprompt.testing import tiny_prompt_classifier


@pytest.fixture
def model():
    return tiny_prompt_classifier(n_ctx=4)


@pytest.fixture
def warnings_logged():
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.parametrize('attribute', ['dataset_meta', '_dataset_meta'])
def test_setting_the_meta_sets_the_class_names(model, attribute):
    assert getattr(model, attribute) == {}
    # What get_model() writes from a checkpoint of mmengine's Runner.
    setattr(model, attribute, {'classes': ('cat', 'sea_lion')})
    assert model.class_names == ['cat', 'sea_lion']
    assert model.dataset_meta == model._dataset_meta == {
        'classes': ('cat', 'sea_lion')
    }
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 2)
    # set_class_names and the meta stay one thing.
    model.set_class_names(['dog'])
    assert getattr(model, attribute) == {'classes': ('dog', )}


def test_a_meta_without_classes_changes_nothing(model):
    model.set_class_names(['cat', 'dog'])
    model._dataset_meta = {}
    model.dataset_meta = None
    model.dataset_meta = {'palette': [(0, 0, 0)]}
    assert model.class_names == ['cat', 'dog']


def test_bad_class_names_in_the_meta_are_refused(model):
    with pytest.raises(ValueError, match='duplicate class names'):
        model.dataset_meta = {'classes': ('cat', 'cat')}


def test_a_dataset_class_level_metainfo_is_not_used(model, warnings_logged):
    """get_model() without a checkpoint passes the METAINFO of the dataset
    class of that name in mmpretrain's scope: mmpretrain's Caltech101 (102
    classes, with 'BACKGROUND_Google'), not the CoOp split's 100."""
    model._dataset_meta = MMPretrainCaltech101.METAINFO
    assert model.class_names == []
    message = ' '.join(r.getMessage() for r in warnings_logged)
    assert 'mmpretrain.datasets.caltech101.Caltech101' in message
    assert 'set_class_names' in message and 'pretrained=' in message
    # A copy of the same names is data (e.g. a checkpoint's): used.
    model._dataset_meta = dict(MMPretrainCaltech101.METAINFO)
    assert len(model.class_names) == 102
