# Copyright (c) mmprompt contributors. All rights reserved.
"""A metric that writes every prediction to a file."""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import mmengine
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmprompt.registry import METRICS

__all__ = ['PredictionDumper']

#: The file formats :class:`PredictionDumper` writes, by suffix.
DUMP_SUFFIXES = ('.json', '.pkl', '.pickle', '.yaml', '.yml')


@METRICS.register_module()
class PredictionDumper(BaseMetric):
    """Collect every prediction as plain Python data and write it to a file.

    Plain lists, numbers and strings rather than ``DataSample`` s, so that
    the file is json if wanted and never needs unpickling code to read.
    One record per image, in dataset order: ``sample_idx``, ``img_path``,
    ``gt_label``, ``pred_label``, ``pred_score`` (a list over the classes)
    and, given the class names, ``pred_class``. Returns no metric.
    ``tools/test.py --out FILE`` adds it to the test evaluator.

    Args:
        out_file (str): Where to write; the suffix picks the format:
            ``.json``, ``.pkl``, ``.pickle``, ``.yaml`` or ``.yml``.
        class_names (Sequence[str], optional): The test set's classes, for
            ``pred_class``. Defaults to None.

    Examples:
        >>> import torch
        >>> dumper = PredictionDumper('preds.json', class_names=['cat', 'dog'])
        >>> dumper.process(None, [dict(
        ...     sample_idx=0, gt_label=torch.tensor([1]),
        ...     pred_label=torch.tensor([1]),
        ...     pred_score=torch.tensor([0.25, 0.75]))])
        >>> dumper.results  # written by dumper.evaluate(size)
        [{'sample_idx': 0, 'gt_label': 1, 'pred_label': 1,
          'pred_score': [0.25, 0.75], 'pred_class': 'dog'}]
    """

    def __init__(self,
                 out_file: str,
                 class_names: Optional[Sequence[str]] = None) -> None:
        if not str(out_file).endswith(DUMP_SUFFIXES):
            raise ValueError(
                f'out_file must end with one of {", ".join(DUMP_SUFFIXES)}, '
                f'got {out_file!r}')
        super().__init__(collect_device='cpu')
        self.out_file = out_file
        self.class_names = list(class_names) if class_names else None

    @staticmethod
    def _plain(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            return value.item() if value.numel() == 1 and \
                value.dim() <= 1 else value.tolist()
        return value

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the plain record of each sample."""
        for sample in data_samples:
            record = {
                key: self._plain(sample[key])
                for key in ('sample_idx', 'img_path', 'gt_label', 'pred_label',
                            'pred_score') if key in sample
            }
            if self.class_names is not None and 'pred_label' in record:
                record['pred_class'] = self.class_names[record['pred_label']]
            self.results.append(record)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Write the records, sorted by ``sample_idx``; no metric."""
        results = sorted(results, key=lambda r: r.get('sample_idx', 0))
        mmengine.mkdir_or_exist(osp.dirname(osp.abspath(self.out_file)))
        mmengine.dump(results, self.out_file)
        print_log(
            f'{len(results)} predictions written to {self.out_file}',
            logger='current')
        return {}
