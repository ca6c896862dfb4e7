# Copyright (c) mmprompt contributors. All rights reserved.
"""ClassNamesHook: the model scores the classes of the stage being run."""
from types import SimpleNamespace

import pytest
import torch.nn as nn

from mmprompt.engine import ClassNamesHook
from mmprompt.registry import HOOKS
from mmprompt.testing import tiny_prompt_classifier

TRAIN = ['cat', 'dog', 'sea lion']
VAL = ['owl', 'fox']
TEST = ['eel', 'ant', 'bee', 'yak']


class _Dataset:

    def __init__(self, classes):
        self.metainfo = dict(classes=classes) if classes is not None else {}


def _loop(classes):
    return SimpleNamespace(
        dataloader=SimpleNamespace(dataset=_Dataset(classes)))


class _Model(nn.Module):
    """Records every class list it is given."""

    def __init__(self):
        super().__init__()
        self.class_names = None
        self.calls = []

    def set_class_names(self, names):
        self.class_names = list(names)
        self.calls.append(list(names))


def _runner(model, train=TRAIN, val=VAL, test=TEST):
    return SimpleNamespace(
        model=model,
        train_loop=_loop(train),
        val_loop=_loop(val),
        test_loop=_loop(test))


def test_switches_to_evaluated_classes_and_back():
    model = _Model()
    runner = _runner(model)
    hook = HOOKS.build(dict(type='ClassNamesHook'))
    assert isinstance(hook, ClassNamesHook)

    hook.before_train(runner)
    assert model.class_names == TRAIN
    # A validation epoch during training scores the validation classes
    # (e.g. the new classes of base-to-new) ...
    hook.before_val_epoch(runner)
    assert model.class_names == VAL
    # ... and training goes on with its own.
    hook.after_val_epoch(runner, metrics={})
    assert model.class_names == TRAIN
    hook.before_test_epoch(runner)
    assert model.class_names == TEST
    assert model.calls == [TRAIN, VAL, TRAIN, TEST]

    # The same classes again: no rebuild of the prompts.
    hook.before_test_epoch(runner)
    assert len(model.calls) == 4


def test_validation_without_training_keeps_its_classes():
    model = _Model()
    runner = _runner(model)
    hook = ClassNamesHook()
    hook.before_val_epoch(runner)
    hook.after_val_epoch(runner, metrics={})
    assert model.calls == [VAL]


def test_a_prompt_classifier_scores_the_classes_of_each_stage():
    model = tiny_prompt_classifier(n_ctx=2)
    runner = _runner(model)
    hook = ClassNamesHook()
    hook.before_train(runner)
    assert list(model.class_names) == TRAIN
    hook.before_val_epoch(runner)
    assert list(model.class_names) == VAL
    hook.after_val_epoch(runner)
    assert list(model.class_names) == TRAIN
    hook.before_test_epoch(runner)
    assert list(model.class_names) == TEST


def test_models_without_class_names_are_left_alone():
    runner = _runner(nn.Linear(2, 2), train=None)
    ClassNamesHook().before_train(runner)  # no metainfo needed either


def test_a_dataset_without_classes_is_named():
    runner = _runner(_Model(), val=None)
    with pytest.raises(
            ValueError,
            match=r"the validation dataset _Dataset has no metainfo\['classes'"
    ):
        ClassNamesHook().before_val_epoch(runner)
