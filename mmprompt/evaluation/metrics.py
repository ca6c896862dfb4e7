# Copyright (c) mmprompt contributors. All rights reserved.
"""What the original's evaluator reports beyond mmpretrain's ``Accuracy``."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmprompt.registry import METRICS


def per_class_scores(y_true: np.ndarray,
                     y_pred: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-class accuracy and F1 over the labels present in ``y_true``.

    Args:
        y_true (np.ndarray): Ground-truth labels, shape (N, ).
        y_pred (np.ndarray): Predicted labels, shape (N, ).

    Returns:
        dict[str, np.ndarray]: ``labels`` (sorted labels of ``y_true``),
        ``accuracy`` and ``f1`` per label, in percent.
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    labels = np.unique(y_true)
    # (L, N) masks of the samples of each label and of each prediction.
    is_true = y_true[None, :] == labels[:, None]
    is_pred = y_pred[None, :] == labels[:, None]
    tp = (is_true & is_pred).sum(1).astype(np.float64)
    n_true = is_true.sum(1).astype(np.float64)
    n_pred = is_pred.sum(1).astype(np.float64)
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (n_pred + n_true); n_true > 0.
    f1 = 2 * tp / (n_pred + n_true)
    return dict(labels=labels, accuracy=100 * tp / n_true, f1=100 * f1)


@METRICS.register_module()
class PerClassMetric(BaseMetric):
    """Macro-F1 and per-class accuracy, as the original's evaluator.

    Top-1 accuracy is mmpretrain's ``Accuracy``; this adds what Dassl's
    ``Classification`` evaluator also computes: ``macro_f1`` (sklearn's
    ``f1_score(average='macro', labels=np.unique(y_true))``: classes absent
    from the ground truth are left out) and ``mean_accuracy`` (the mean of
    the per-class accuracies), all in percent. The prediction is the argmax
    of ``pred_score``, or ``pred_label`` if there is no score.

    Args:
        log_per_class (bool): Whether to log the accuracy of every class
            with its name from ``dataset_meta['classes']``. Defaults to
            False.
        collect_device (str): Device to gather results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``'per_class'``.

    Examples:
        >>> import torch
        >>> from mmprompt.evaluation import PerClassMetric
        >>> metric = PerClassMetric()
        >>> metric.process(None, [
        ...     dict(pred_label=torch.tensor([0]), gt_label=torch.tensor([0])),
        ...     dict(pred_label=torch.tensor([0]), gt_label=torch.tensor([1])),
        ... ])
        >>> metric.evaluate(2)['per_class/mean_accuracy']
        50.0
    """
    default_prefix: Optional[str] = 'per_class'

    def __init__(self,
                 log_per_class: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.log_per_class = log_per_class

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep the predicted and true label of every sample.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples (Sequence[dict]): The model outputs.
        """
        for sample in data_samples:
            if 'pred_score' in sample:
                pred = int(sample['pred_score'].argmax())
            else:
                pred = int(sample['pred_label'].reshape(-1)[0])
            gt = int(sample['gt_label'].reshape(-1)[0])
            self.results.append((pred, gt))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        """Compute the metrics from all ranks' results.

        Args:
            results (list): ``(pred, gt)`` pairs.

        Returns:
            dict[str, float]: ``accuracy``, ``error_rate``, ``macro_f1`` and
            ``mean_accuracy`` in percent.
        """
        y_pred = np.array([r[0] for r in results])
        y_true = np.array([r[1] for r in results])
        scores = per_class_scores(y_true, y_pred)
        accuracy = 100 * float((y_pred == y_true).mean())
        if self.log_per_class:
            classes = (self.dataset_meta or {}).get('classes')
            lines = ['=> per-class result']
            for label, acc in zip(scores['labels'], scores['accuracy']):
                name = classes[label] if classes is not None and label < len(
                    classes) else str(label)
                total = int((y_true == label).sum())
                lines.append(f'* class: {label} ({name})\ttotal: {total}\t'
                             f'accuracy: {acc:.1f}%')
            print_log('\n'.join(lines), logger='current')
        return dict(
            accuracy=accuracy,
            error_rate=100 - accuracy,
            macro_f1=float(scores['f1'].mean()),
            mean_accuracy=float(scores['accuracy'].mean()))
