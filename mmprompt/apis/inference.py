# Copyright (c) mmprompt contributors. All rights reserved.
"""Classify images with a learned prompt, for any list of class names."""
import copy
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.model import is_model_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import CheckpointLoader

# Registers mmprompt's modules and its weights_only checkpoint loaders.
import mmprompt  # noqa: F401  # isort: skip
from mmprompt.registry import DATASETS, MODELS, TRANSFORMS
from mmprompt.utils import (check_checkpoint_fits, check_trained_on,
                            checkpoint_filter_fn)

__all__ = ['PromptInferencer', 'ImageInput']

#: What one input may be: a file path, an HWC uint8 array in **BGR** order
#: (as ``mmcv.imread`` and ``cv2.imread`` return) or a ``PIL.Image``.
ImageInput = Union[str, np.ndarray, Any]

_LOADERS = ('LoadImageFromFile', 'mmpretrain.LoadImageFromFile',
            'mmcv.LoadImageFromFile')


class PromptInferencer:
    """Image classification with a CLIP and a learned (or hand-written)
    prompt, over any list of class names.

    A shared-context CoOp or a CoCoOp prompt is not tied to the classes it
    was trained on: give it any class names (the open-vocabulary use of a
    learned prompt). A class-specific-context (CSC) checkpoint scores only
    its own classes, which are then the default.

    Images go through the test pipeline of the config
    (``test_dataloader.dataset.pipeline``) and the model's data
    preprocessor, exactly as in ``tools/test.py``.

    Args:
        config (str | Config | dict): The config the model was trained with
            (its ``model`` and test pipeline are used).
        checkpoint (str, optional): A checkpoint of ``tools/train.py``, or
            one of the original CoOp / CoCoOp code. Read through mmengine's
            ``CheckpointLoader`` with ``weights_only=True``; refused if it
            does not fit the model or records another model than it (see
            ``ignore_checkpoint_meta``). None keeps the model as the config
            builds it (e.g. zero-shot CLIP). Defaults to None.
        class_names (Sequence[str], optional): The default classes. If None:
            a CSC checkpoint's own classes, else those of the config's test
            set if it can be read, else they must be given to
            :meth:`__call__`. Defaults to None.
        device (str | torch.device): Where the model runs. Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides merged into the config, e.g.
            ``{'model.clip.pretrained': '/data/ViT-B-16.pt'}``.
            Defaults to None.
        ignore_checkpoint_meta (bool): Load a checkpoint that records
            another CLIP (arch or weights) or prompt learner (type or
            options) than the config builds, with a warning naming the
            differences; refused otherwise
            (:func:`mmprompt.utils.check_trained_on`). Defaults to False.

    Examples:
        >>> from mmprompt.apis import PromptInferencer
        >>> inferencer = PromptInferencer(  # doctest: +SKIP
        ...     'configs/cocoop_vit-b16.py', 'work_dirs/cocoop/epoch_10.pth')
        >>> inferencer('cat.jpg', class_names=['cat', 'dog'],
        ...            topk=2)  # doctest: +SKIP
        [{'pred_label': 0, 'pred_score': 0.93, 'pred_class': 'cat',
          'topk': [('cat', 0.93), ('dog', 0.07)]}]
    """

    def __init__(self,
                 config: Union[str, Config, dict],
                 checkpoint: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None,
                 device: Union[str, torch.device] = 'cpu',
                 cfg_options: Optional[dict] = None,
                 ignore_checkpoint_meta: bool = False) -> None:
        if isinstance(config, str):
            if not osp.isfile(config):
                raise FileNotFoundError(f'config {config!r}: no such file')
            cfg = Config.fromfile(config)
        elif isinstance(config, Config):
            cfg = copy.deepcopy(config)
        else:
            cfg = Config(copy.deepcopy(dict(config)))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        self.cfg = cfg
        self.device = torch.device(device)
        self.ignore_checkpoint_meta = ignore_checkpoint_meta
        scope = cfg.get('default_scope', 'mmprompt')
        with DefaultScope.overwrite_default_scope(scope):
            self.model = self._build_model(cfg, checkpoint)
            self.pipeline, self.array_pipeline = self._build_pipelines(cfg)
        if class_names is not None:
            self.class_names = list(class_names)
        else:
            self.class_names = self._default_class_names(cfg)
        if self.class_names:
            # Fails here, not at the first call, for names a CSC checkpoint
            # cannot score.
            self.model.set_class_names(self.class_names)

    # ------------------------------------------------------------------
    # building
    # ------------------------------------------------------------------
    def _build_model(self, cfg: Config,
                     checkpoint: Optional[str]) -> nn.Module:
        if cfg.get('model') is None:
            raise ValueError('the config has no `model`')
        model = MODELS.build(cfg.model)
        if not hasattr(model, 'set_class_names'):
            raise TypeError(
                f'{type(model).__name__} has no set_class_names(); '
                'PromptInferencer needs a PromptClassifier config')
        if checkpoint is not None:
            self._load_checkpoint(model, checkpoint,
                                  self.ignore_checkpoint_meta)
        model.to(self.device)
        model.eval()
        return model

    @staticmethod
    def _load_checkpoint(model: nn.Module,
                         path: str,
                         ignore_meta: bool = False) -> None:
        """Load the learned prompt; every learned tensor is required, and
        the model it records it was trained with must be this one."""
        if '://' not in path and not osp.isfile(osp.expanduser(path)):
            raise FileNotFoundError(
                f'checkpoint {path!r}: no such file; give a checkpoint '
                'written by tools/train.py')
        checkpoint = CheckpointLoader.load_checkpoint(
            osp.expanduser(path), map_location='cpu')
        if not isinstance(checkpoint, dict):
            raise ValueError(f'checkpoint {path!r} holds a '
                             f'{type(checkpoint).__name__}, not a dict')
        if is_model_wrapper(model):
            model = model.module
        # mmprompt's keys, whoever wrote the checkpoint.
        state_dict = checkpoint_filter_fn(checkpoint, model)
        # Every learned tensor, with its shape (the extra state, the classes
        # of class-specific contexts, is optional: converted checkpoints
        # lack it), and nothing the model does not have.
        check_checkpoint_fits(model, state_dict, path)
        # Equal shapes do not make the same model: the CLIP, the learner's
        # options (e.g. class_token_position) must be those it learned with.
        check_trained_on(checkpoint, model, path, ignore=ignore_meta)
        result = model.load_state_dict(state_dict, strict=False)
        if result.unexpected_keys:
            raise ValueError(
                f'checkpoint {path!r} does not fit the model of the config: '
                f'it holds {result.unexpected_keys}, which the model does '
                'not have. The config must build the prompt learner the '
                'checkpoint was trained with (arch, n_ctx, ctx_init, csc).')

    @staticmethod
    def _build_pipelines(cfg: Config) -> Tuple[Compose, Compose]:
        """The test pipeline, and the same without its image loading for
        inputs that are arrays already."""
        pipeline = None
        loader = cfg.get('test_dataloader') or {}
        if loader.get('dataset') is not None:
            pipeline = loader['dataset'].get('pipeline')
        if pipeline is None:
            pipeline = cfg.get('test_pipeline')
        if pipeline is None:
            raise ValueError('the config has no test pipeline: add '
                             'test_dataloader.dataset.pipeline (see '
                             'configs/_base_/datasets/pipelines.py)')
        pipeline = [dict(t) for t in pipeline]
        without_loading = [t for t in pipeline if t['type'] not in _LOADERS]
        return (Compose([TRANSFORMS.build(t) for t in pipeline]),
                Compose([TRANSFORMS.build(t) for t in without_loading]))

    def _default_class_names(self, cfg: Config) -> Optional[List[str]]:
        learner = getattr(self._head(), 'prompt_learner', None)
        trained = getattr(learner, 'trained_class_names', None)
        if trained:
            return list(trained)
        dataset = (cfg.get('test_dataloader') or {}).get('dataset')
        if dataset is None:
            return None
        try:
            with DefaultScope.overwrite_default_scope(
                    cfg.get('default_scope', 'mmprompt')):
                classes = DATASETS.build(
                    copy.deepcopy(dataset)).metainfo.get('classes')
        except Exception:  # no data here: the caller gives names instead
            return None
        return list(classes) if classes else None

    def _head(self) -> nn.Module:
        return self.model.head

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def _prepare(self, image: ImageInput) -> dict:
        if isinstance(image, str):
            if not osp.isfile(image):
                raise FileNotFoundError(f'image {image!r}: no such file')
            return self.pipeline(dict(img_path=image))
        if not isinstance(image, np.ndarray) and hasattr(image, 'convert'):
            # A PIL image: RGB to the BGR order of the pipeline.
            image = np.asarray(image.convert('RGB'))[..., ::-1]
        if not isinstance(image, np.ndarray):
            raise TypeError('an input must be an image path, an HWC BGR '
                            'numpy array or a PIL image, got '
                            f'{type(image).__name__}')
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError('an array input must be HWC with 3 channels '
                             f'(BGR), got shape {image.shape}')
        image = np.ascontiguousarray(image)
        return self.array_pipeline(
            dict(
                img=image,
                img_shape=image.shape[:2],
                ori_shape=image.shape[:2]))

    def __call__(self,
                 inputs: Union[ImageInput, Sequence[ImageInput]],
                 class_names: Optional[Sequence[str]] = None,
                 topk: int = 5,
                 batch_size: int = 8) -> List[Dict[str, Any]]:
        """Classify images.

        Args:
            inputs (str | np.ndarray | PIL.Image | Sequence): One image or a
                list. An array is HWC uint8 in **BGR** order (as
                ``mmcv.imread`` returns; for RGB data pass
                ``rgb[..., ::-1]``).
            class_names (Sequence[str], optional): The classes to choose
                from, in label order; ``_`` reads as a space. Defaults to
                the inferencer's classes.
            topk (int): How many of the best classes to list; at most the
                number of classes. Defaults to 5.
            batch_size (int): Images per forward pass. Defaults to 8.

        Returns:
            list[dict]: One dict per image: ``pred_label`` (int),
            ``pred_score`` (float, softmax probability), ``pred_class``
            (str) and ``topk`` (list of ``(class, score)``, best first).
        """
        names = list(class_names) if class_names is not None else \
            self.class_names
        if not names:
            raise ValueError(
                'no class names: pass class_names (to the inferencer or to '
                'this call); the config\'s test set could not provide them')
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f'topk must be a positive int, got {topk!r}')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError('batch_size must be a positive int, got '
                             f'{batch_size!r}')
        if isinstance(inputs,
                      (str, np.ndarray)) or not isinstance(inputs, Sequence):
            inputs = [inputs]
        if list(self.model.class_names or []) != names:
            self.model.set_class_names(names)
        k = min(topk, len(names))
        results = []
        for start in range(0, len(inputs), batch_size):
            batch = [
                self._prepare(x) for x in inputs[start:start + batch_size]
            ]
            with torch.no_grad():
                samples = self.model.test_step(pseudo_collate(batch))
            for sample in samples:
                scores = sample.pred_score.float().cpu()
                values, labels = scores.topk(k)
                label = int(labels[0])
                results.append(
                    dict(
                        pred_label=label,
                        pred_score=float(values[0]),
                        pred_class=names[label],
                        topk=[(names[int(i)], float(v))
                              for v, i in zip(values, labels)]))
        return results
