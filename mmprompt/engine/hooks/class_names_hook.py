# Copyright (c) mmprompt contributors. All rights reserved.
"""The hook that keeps the model's class names in step with the data."""
from typing import List

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmprompt.registry import HOOKS

__all__ = ['ClassNamesHook']


def _classes_of(dataloader, stage: str) -> List[str]:
    dataset = dataloader.dataset
    classes = getattr(dataset, 'metainfo', {}).get('classes')
    if not classes:
        raise ValueError(
            f'the {stage} dataset {type(dataset).__name__} has no '
            "metainfo['classes'], so the model cannot know which class "
            'names to build prompts for; give the dataset its class names')
    return list(classes)


@HOOKS.register_module()
class ClassNamesHook(Hook):
    """Set the model's class names from the dataset of each stage.

    Before training the model scores the training set's classes, before
    each validation or test epoch the evaluated set's (e.g. the new classes
    of a base-to-new run), and after validation the training classes again.
    Models without ``set_class_names`` (e.g. mmpretrain's
    ``ImageClassifier``) are left alone.

    Examples:
        >>> custom_hooks = [dict(type='ClassNamesHook')]
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._train_loader = None

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _set(self, runner, dataloader, stage: str) -> List[str]:
        model = self._model(runner)
        if not hasattr(model, 'set_class_names'):
            return []
        classes = _classes_of(dataloader, stage)
        if list(getattr(model, 'class_names', None) or []) != classes:
            model.set_class_names(classes)
        return classes

    def before_train(self, runner) -> None:
        self._train_loader = runner.train_loop.dataloader
        self._set(runner, self._train_loader, 'training')

    def before_val_epoch(self, runner) -> None:
        self._set(runner, runner.val_loop.dataloader, 'validation')

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._train_loader is not None:
            self._set(runner, self._train_loader, 'training')

    def before_test_epoch(self, runner) -> None:
        self._set(runner, runner.test_loop.dataloader, 'test')
