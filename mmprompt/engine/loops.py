# Copyright (c) mmprompt contributors. All rights reserved.
"""The training loop of the methods on cached CLIP features."""
import json
import os.path as osp
from typing import Any, Dict

from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from mmprompt.registry import LOOPS
from mmprompt.utils import FeatureSet, atomic_write, check_search_split

__all__ = ['AdapterTrainLoop', 'CHOICES_FILE']

#: The file in the work dir that records what each search chose, and on
#: which split.
CHOICES_FILE = 'adapter_choices.json'


@LOOPS.register_module()
class AdapterTrainLoop(EpochBasedTrainLoop):
    """mmengine's epoch loop for an ``AdapterClassifier`` on cached
    features: fit, train, search.

    1. ``before_train`` hooks (``FeatureCacheHook`` gives the training and
       validation sets their features);
    2. the adapter's ``fit`` on every view of the training features (and
       the validation features); skipped when the adapter is fitted already
       (a resumed run, ``load_from``). Under DDP the model is wrapped again
       after it, since ``fit`` may give parameters their size;
    3. ``max_epochs`` epochs of mmengine's training on the features, epoch
       ``e`` reading view ``e % V`` of the training set; ``max_epochs=0``
       (a training-free method) runs one epoch without iterations, so that
       the hooks save its checkpoint (``epoch_1.pth``);
    4. at the end of the last epoch, before its checkpoint is saved, the
       adapter's ``search`` on the ``search_split`` features.

    What ``fit`` and ``search`` chose is logged with the split that chose
    it and written to ``{work_dir}/adapter_choices.json``.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training loader, over a
            ``CachedFeatureDataset``.
        max_epochs (int): Training epochs; 0 for a training-free method.
        search_split (str): The split the hyper-parameters are chosen on:
            ``'val'`` (the validation loader's set, few-shot in the CoOp
            protocol) or ``'train'`` (the training features); see
            :data:`~mmprompt.utils.SEARCH_SPLITS`. ``'test'`` is
            refused, as is a validation loader reading the test split.
            Defaults to 'val'.
        val_begin (int): As mmengine's. Defaults to 1.
        val_interval (int): As mmengine's. Defaults to 1.
    """

    def __init__(self,
                 runner,
                 dataloader,
                 max_epochs: int,
                 search_split: str = 'val',
                 val_begin: int = 1,
                 val_interval: int = 1,
                 dynamic_intervals=None) -> None:
        check_search_split(search_split, 'search (search_split)')
        if not isinstance(max_epochs, int) or max_epochs < 0:
            raise ValueError(f'max_epochs must be an int >= 0, got '
                             f'{max_epochs!r}')
        self.training_free = max_epochs == 0
        self.search_split = search_split
        super().__init__(runner, dataloader, max(max_epochs, 1), val_begin,
                         val_interval, dynamic_intervals)
        if not hasattr(self.dataloader.dataset, 'set_view'):
            raise TypeError(
                'AdapterTrainLoop trains on cached features: the training '
                "dataset must be a CachedFeatureDataset, got "
                f'{type(self.dataloader.dataset).__name__}')
        if getattr(self.dataloader, 'persistent_workers', False):
            raise ValueError(
                'AdapterTrainLoop: the training loader must not keep '
                'persistent workers (persistent_workers=False, or '
                'num_workers=0): each epoch reads another view of the '
                'cached features')
        self.choices: Dict[str, Any] = {}
        # The parameters the optimizer is built with (next, by the runner):
        # fit() and a checkpoint's load may replace those the data sizes.
        self._built_with = dict(self.model.named_parameters())

    @property
    def model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _feature_set(self, dataset, split: str):
        from_split = getattr(dataset, 'split', None)
        if split != 'train' and from_split == 'test':
            raise ValueError(
                f'search_split={split!r} reads the validation loader, whose '
                f'dataset is the test split ({dataset!r}): hyper-parameters '
                'are never chosen on test data. Give the validation loader '
                "the val split, or use search_split='train'")
        if getattr(dataset, 'features', None) is None:
            raise RuntimeError(f'{dataset!r} has no features: add '
                               "dict(type='FeatureCacheHook') to custom_hooks")
        return FeatureSet(dataset.features, dataset.labels, split)

    def _val_dataset(self):
        loop = self.runner.val_loop
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        if dataset is None or not hasattr(dataset, 'image_view'):
            return None
        return dataset

    def _record(self, stage: str, chosen: Dict[str, Any]) -> None:
        if not chosen:
            return
        self.choices[stage] = chosen
        for name, what in chosen.items():
            print_log(
                f'{type(self.model.adapter).__name__} {stage}: {name} = '
                f'{what["value"]} (chosen on the {what["split"]} split)',
                logger='current')
        if is_main_process():
            atomic_write(
                osp.join(self.runner.work_dir, CHOICES_FILE),
                json.dumps(self.choices, indent=1).encode('utf-8'))

    def fit(self) -> None:
        """The adapter's fit on the cached features (step 2)."""
        model = self.model
        adapter = model.adapter
        if getattr(adapter, 'fitted', False):
            print_log(
                f'{type(adapter).__name__} is fitted already (resumed or '
                'loaded): not fitted again',
                logger='current')
        else:
            train = self._feature_set(self.dataloader.dataset, 'train')
            val_dataset = self._val_dataset()
            val = None
            if val_dataset is not None:
                val = self._feature_set(val_dataset, 'val')
            self._record('fit', model.fit(train, val))
        self._replace_in_optimizer(self._built_with,
                                   dict(model.named_parameters()))
        if is_model_wrapper(self.runner.model) and adapter.trainable:
            # DDP sized its buckets for the parameters before fit().
            self.runner.model = self.runner.wrap_model(
                self.runner.cfg.get('model_wrapper_cfg'), model)

    def _replace_in_optimizer(self, before: dict, after: dict) -> None:
        """Point the optimizer at the parameters ``fit`` created in place
        of those it was built with (a parameter whose size the data sets
        is a new tensor: resizing one in place breaks autograd once DDP
        has hooked it)."""
        swap = {
            id(before[name]): param
            for name, param in after.items()
            if name in before and before[name] is not param
        }
        if not swap:
            return
        wrapper = self.runner.optim_wrapper
        wrappers = wrapper.values() if hasattr(wrapper,
                                               'values') else [wrapper]
        for optim in wrappers:
            optimizer = optim.optimizer
            for group in optimizer.param_groups:
                old = group['params']
                group['params'] = [swap.get(id(p), p) for p in old]
                for p, q in zip(old, group['params']):
                    if p is not q and p in optimizer.state:
                        # a resumed run's optimizer state goes along
                        optimizer.state[q] = optimizer.state.pop(p)

    def search(self) -> None:
        """The adapter's search (step 4)."""
        if self.search_split == 'train':
            data = self._feature_set(self.dataloader.dataset, 'train')
        else:
            val_dataset = self._val_dataset()
            if val_dataset is None:
                raise ValueError(
                    "search_split='val' needs a validation loader over a "
                    'CachedFeatureDataset of the val split (val_dataloader, '
                    "val_cfg); or use search_split='train'")
            data = self._feature_set(val_dataset, 'val')
        self._record('search', self.model.search(data))

    def run(self):
        """Launch training."""
        if self.search_split == 'val' and self._val_dataset() is None:
            # Known before any feature is extracted or epoch trained.
            raise ValueError(
                "search_split='val' needs a validation loader over a "
                'CachedFeatureDataset of the val split (val_dataloader, '
                "val_cfg); or use search_split='train'")
        self.runner.call_hook('before_train')
        self.fit()
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._epoch >= self.val_begin
                    and (self._epoch % self.val_interval == 0
                         or self._epoch == self._max_epochs)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_epoch(self) -> None:
        """One epoch on view ``epoch % V``; the search ends the last one."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        self.dataloader.dataset.set_view(self._epoch)
        if not self.training_free:
            for idx, data_batch in enumerate(self.dataloader):
                self.run_iter(idx, data_batch)
        if self._epoch + 1 == self._max_epochs:
            self.search()
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
