# Copyright (c) mmprompt contributors. All rights reserved.
import json

import mmengine
import pytest
import torch
from mmpretrain.structures import DataSample

from mmprompt.evaluation import PredictionDumper
from mmprompt.registry import METRICS


def _sample(index, label, scores):
    scores = torch.tensor(scores)
    sample = DataSample().set_gt_label(label).set_pred_score(
        scores).set_pred_label(scores.argmax())
    sample.set_metainfo(dict(sample_idx=index, img_path=f'img_{index}.png'))
    return sample.to_dict()


@pytest.mark.parametrize('suffix', ['.json', '.pkl', '.yaml'])
def test_writes_plain_records_in_dataset_order(tmp_path, suffix):
    out = tmp_path / 'sub' / f'preds{suffix}'
    dumper = METRICS.build(
        dict(
            type='PredictionDumper',
            out_file=str(out),
            class_names=['cat', 'dog']))
    # Batches reach the metric in any order (e.g. gathered from ranks).
    dumper.process(None, [_sample(1, 0, [0.9, 0.1])])
    dumper.process(None, [_sample(0, 1, [0.2, 0.8])])
    assert dumper.evaluate(2) == {}
    records = mmengine.load(str(out))
    assert records == [
        dict(
            sample_idx=0,
            img_path='img_0.png',
            gt_label=1,
            pred_label=1,
            pred_score=pytest.approx([0.2, 0.8]),
            pred_class='dog'),
        dict(
            sample_idx=1,
            img_path='img_1.png',
            gt_label=0,
            pred_label=0,
            pred_score=pytest.approx([0.9, 0.1]),
            pred_class='cat'),
    ]
    if suffix == '.json':
        json.loads(out.read_text())  # plain data, no pickled objects


def test_bad_suffix_is_named():
    with pytest.raises(ValueError, match=r"got 'preds.txt'"):
        PredictionDumper('preds.txt')
