# Copyright (c) mmprompt contributors. All rights reserved.
"""--cfg-options that set a top-level variable after the config has copied
it into other entries."""
from pathlib import Path

from mmengine.config import Config

from mmprompt.utils import stale_copies

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / 'configs' / 'demo' / \
    'coop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py'

CONFIG = '''\
data_root = 'data/old'
dataset_type = 'OxfordPets'
max_epochs = 10
flag = True
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root,
                 pipeline=[dict(type='Load', prefix=data_root + '/images')]))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = dict(T_max=max_epochs, by_epoch=flag)
'''


def _merged(tmp_path, options):
    path = tmp_path / 'config.py'
    path.write_text(CONFIG)
    cfg = Config.fromfile(str(path))
    before = cfg.to_dict()
    cfg.merge_from_dict(options)
    return stale_copies(before, cfg, options)


def test_a_top_level_variable_copied_at_parse_time_is_named(tmp_path):
    warnings = _merged(tmp_path, {'data_root': '/new'})
    assert len(warnings) == 1
    message = warnings[0]
    assert "data_root='/new'" in message and "'data/old'" in message
    for entry in ('train_dataloader.dataset.data_root=/new',
                  'train_dataloader.dataset.pipeline.0.prefix=/new/images',
                  'test_dataloader.dataset.data_root=/new'):
        assert entry in message, message
    # What --cfg-options the message proposes does reach every entry.
    proposed = message.split('--cfg-options ')[-1].rstrip('.').split()
    cfg = Config.fromfile(str(tmp_path / 'config.py'))
    cfg.merge_from_dict(
        dict(data_root='/new', **dict(p.split('=', 1) for p in proposed)))
    assert cfg.train_dataloader.dataset.pipeline[0].prefix == '/new/images'
    assert cfg.test_dataloader.dataset.data_root == '/new'

    warnings = _merged(tmp_path, {'max_epochs': 5, 'dataset_type': 'DTD'})
    assert len(warnings) == 2
    assert 'train_cfg.max_epochs=5' in warnings[0] + warnings[1]
    assert 'param_scheduler.T_max=5' in warnings[0] + warnings[1]
    assert 'test_dataloader.dataset.type=DTD' in warnings[0] + warnings[1]


def test_nothing_to_say(tmp_path):
    # The entries set as well (as run_sweep does), the same value, a new
    # key, a nested key, a boolean.
    assert _merged(
        tmp_path, {
            'data_root': '/new',
            'train_dataloader.dataset.data_root': '/new',
            'train_dataloader.dataset.pipeline.0.prefix': '/new/images',
            'test_dataloader.dataset.data_root': '/new'
        }) == []
    assert _merged(tmp_path, {'data_root': 'data/old'}) == []
    assert _merged(tmp_path, {'new_key': 'data/old'}) == []
    assert _merged(tmp_path, {'train_cfg.max_epochs': 3}) == []
    assert _merged(tmp_path, {'flag': False}) == []


def test_the_demo_config(tmp_path):
    cfg = Config.fromfile(str(DEMO))
    before = cfg.to_dict()
    options = {'data_root': str(tmp_path)}
    cfg.merge_from_dict(options)
    [message] = stale_copies(before, cfg, options)
    assert f'test_dataloader.dataset.data_root={tmp_path}' in message
    assert (f'model.clip.pretrained={tmp_path}/mmprompt-tiny-vit_shapes.pt'
            in message)
