# Copyright (c) mmprompt contributors. All rights reserved.
"""The feature cache through the runner: extracted once, reused, rebuilt
when what made it changes, never silently read from a stale or foreign
file; the views in dataset order; the protocol guard of the adapter loop."""
import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmprompt.utils import FeatureCache

CLASSES = ['cat', 'dog', 'sea_lion']
SIZES = dict(train=4, val=2, test=2)


def make_tree(root: Path) -> Path:
    """Three classes of 32x32 PNGs and a CoOp split file."""
    from PIL import Image
    rng = np.random.default_rng(0)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    split = {name: [] for name in SIZES}
    for label, (name, colour) in enumerate(zip(CLASSES, colours)):
        (root / 'images' / name).mkdir(parents=True, exist_ok=True)
        index = 0
        for split_name, size in SIZES.items():
            for _ in range(size):
                noise = rng.integers(-60, 60, size=(32, 32, 3))
                pixels = np.clip(np.array(colour) + noise, 0, 255)
                rel = f'{name}/{index:02d}.png'
                Image.fromarray(pixels.astype(np.uint8)).save(root / 'images' /
                                                              rel)
                split[split_name].append([rel, label, name])
                index += 1
    (root / 'split.json').write_text(json.dumps(split))
    return root


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp('adapter_data'))


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """Two different random tiny CLIPs saved as open_clip state dicts."""
    import open_clip

    from mmprompt.models import OpenCLIP  # noqa: F401 (registers the arch)
    folder = tmp_path_factory.mktemp('weights')
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = open_clip.create_model('mmprompt-tiny-vit')
        paths.append(str(folder / f'tiny_{seed}.pt'))
        torch.save(model.state_dict(), paths[-1])
    return paths


TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(
        type='RandomResizedCrop',
        scale=32,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
TEST_PIPELINE = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=32),
    dict(type='PackInputs'),
]


def config(tree,
           work_dir,
           cache_dir=None,
           pretrained=None,
           epochs=2,
           views=3,
           train_pipeline=TRAIN_PIPELINE,
           search_split='val',
           val_split='val',
           finetune=True) -> Config:

    def loader(split, pipeline, views=1, shuffle=False):
        return dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            dataset=dict(
                type='CachedFeatureDataset',
                views=views,
                dataset=dict(
                    type='SplitJsonDataset',
                    data_root=str(tree),
                    split_file='split.json',
                    image_dir='images',
                    split=split,
                    pipeline=pipeline)))

    return Config(
        dict(
            default_scope='mmprompt',
            work_dir=str(work_dir),
            model=dict(
                type='AdapterClassifier',
                clip=dict(
                    type='OpenCLIP',
                    arch='mmprompt-tiny-vit',
                    pretrained=pretrained),
                adapter=dict(
                    type='TipAdapter',
                    finetune=finetune,
                    search=dict(
                        alpha_max=5., alpha_steps=4, beta_max=5.,
                        beta_steps=4))),
            train_dataloader=loader('train', train_pipeline, views, True),
            val_dataloader=loader(val_split, TEST_PIPELINE),
            test_dataloader=loader('test', TEST_PIPELINE),
            val_evaluator=dict(type='Accuracy', topk=(1, )),
            test_evaluator=dict(type='Accuracy', topk=(1, )),
            optim_wrapper=dict(
                optimizer=dict(
                    type='AdamW', lr=0.01, eps=1e-4, weight_decay=0.01)),
            param_scheduler=dict(
                type='CosineAnnealingLR',
                T_max=max(epochs, 1),
                by_epoch=True,
                convert_to_iter_based=True),
            train_cfg=dict(
                type='AdapterTrainLoop',
                max_epochs=epochs,
                search_split=search_split,
                val_interval=max(epochs, 1)),
            val_cfg=dict(),
            test_cfg=dict(),
            default_hooks=dict(
                logger=dict(type='LoggerHook', interval=1),
                checkpoint=dict(type='SafeCheckpointHook', interval=1)),
            custom_hooks=[
                dict(type='ClassNamesHook'),
                dict(
                    type='FeatureCacheHook',
                    cache_dir=None if cache_dir is None else str(cache_dir))
            ],
            env_cfg=dict(dist_cfg=dict(backend='gloo')),
            randomness=dict(seed=0),
            log_level='INFO'))


def train(cfg: Config) -> Runner:
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    runner.train()
    return runner


def extracted(runner: Runner) -> int:
    hook = next(
        h for h in runner.hooks if type(h).__name__ == 'FeatureCacheHook')
    return hook.extracted


def test_second_run_extracts_nothing(tree, tmp_path):
    cache = tmp_path / 'cache'
    first = train(config(tree, tmp_path / 'a', cache))
    assert extracted(first) == 3 + 1  # 3 training views, the val split
    files = sorted(cache.iterdir())
    assert len(files) == 4
    second = train(config(tree, tmp_path / 'b', cache))
    assert extracted(second) == 0
    assert sorted(cache.iterdir()) == files
    for loader in ('train_dataloader', 'val_dataloader'):
        a = getattr(first, loader).dataset.features
        b = getattr(second, loader).dataset.features
        assert torch.equal(a, b)
    # The same training from the same features.
    assert torch.equal(first.model.adapter.cache_keys,
                       second.model.adapter.cache_keys)
    # Testing reads the test split's features once, then from the cache.
    first.test()
    assert extracted(first) == 4 + 1
    second.test()
    assert extracted(second) == 0


def test_views_in_dataset_order(tree, tmp_path):
    """View v of item i is the image pipeline under the seed of (v, i)."""
    from mmprompt.datasets import SampleIndex, sample_seed
    runner = train(config(tree, tmp_path, tmp_path / 'cache', epochs=0))
    dataset = runner.train_dataloader.dataset
    model = runner.model
    views = dataset.features
    assert views.shape == (3, 12, 64)
    assert not torch.equal(views[0], views[1])  # augmented differently
    for v in range(3):
        for i in (0, 5, 11):
            item = dataset.dataset[SampleIndex(i, sample_seed(1, v, i))]
            data = model.data_preprocessor(
                dict(inputs=[item['inputs']], data_samples=None), False)
            torch.testing.assert_close(
                model.extract_features(data['inputs'])[0], views[v, i])


def test_changed_transform_or_weights_make_a_new_cache(tree, tmp_path,
                                                       weights):
    cache = tmp_path / 'cache'
    base = train(config(tree, tmp_path / 'a', cache, weights[0], epochs=0))
    assert extracted(base) == 4
    # Another transform of the training images: new training views only.
    other = [dict(t) for t in TRAIN_PIPELINE]
    other[1]['crop_ratio_range'] = (0.3, 1.0)
    runner = train(
        config(
            tree,
            tmp_path / 'b',
            cache,
            weights[0],
            epochs=0,
            train_pipeline=other))
    assert extracted(runner) == 3
    assert not torch.equal(runner.train_dataloader.dataset.features,
                           base.train_dataloader.dataset.features)
    # Other weights: everything again.
    runner = train(config(tree, tmp_path / 'c', cache, weights[1], epochs=0))
    assert extracted(runner) == 4
    assert len(list(cache.iterdir())) == 4 + 3 + 4
    # The same weights copied elsewhere: read as they are, and the key
    # holds their fingerprint, so another file of the same name does not
    # pass for them.
    key = base.model.feature_key()
    assert key['pretrained'] == weights[0]
    assert key['weights'] != runner.model.feature_key()['weights']


def test_corrupted_or_foreign_files_are_rebuilt(tree, tmp_path):
    cache = tmp_path / 'cache'
    first = train(config(tree, tmp_path / 'a', cache, epochs=0))
    files = {p.name: p.read_bytes() for p in cache.iterdir()}
    names = sorted(files)
    # One file truncated, another replaced by a third's content.
    (cache / names[0]).write_bytes(files[names[0]][:100])
    (cache / names[1]).write_bytes(files[names[2]])
    second = train(config(tree, tmp_path / 'b', cache, epochs=0))
    messages = [
        line for line in next((tmp_path /
                               'b').glob('*/*.log')).read_text().splitlines()
        if 'WARNING' in line
    ]
    assert extracted(second) == 2, messages
    assert any(names[0] in m and 'cannot be read' in m for m in messages)
    # The message names the fields that differ.
    assert any(names[1] in m and 'made for another key: data.' in m
               and ' in the file, ' in m for m in messages)
    for loader in ('train_dataloader', 'val_dataloader'):
        assert torch.equal(
            getattr(first, loader).dataset.features,
            getattr(second, loader).dataset.features)
    # Rewritten: a third run reads everything.
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == files
    assert extracted(train(config(tree, tmp_path / 'c', cache, epochs=0))) == 0


def test_feature_cache_file_checks(tmp_path):
    cache = FeatureCache(str(tmp_path))
    key = dict(clip=dict(arch='a'), data=dict(view=0))
    assert cache.load(key) is None
    path = cache.save(key, torch.arange(6.).reshape(2, 3))
    assert torch.equal(cache.load(key), torch.arange(6.).reshape(2, 3))
    other = dict(clip=dict(arch='b'), data=dict(view=0))
    assert cache.path(other) != path
    # A file of another key under this key's name is not used.
    Path(cache.path(other)).write_bytes(Path(path).read_bytes())
    assert cache.load(other) is None
    # Nor a torch file that is not a feature file.
    torch.save(dict(state_dict={}), cache.path(other))
    assert cache.load(other) is None


def test_protocol_guard(tree, tmp_path):
    with pytest.raises(ValueError, match="got 'test'"):
        train(
            config(
                tree, tmp_path / 'a', tmp_path / 'cache', search_split='test'))
    # A validation loader over the test split cannot choose either.
    with pytest.raises(ValueError, match='is the test split'):
        train(
            config(tree, tmp_path / 'b', tmp_path / 'cache', val_split='test'))


def test_choices_logged_and_written(tree, tmp_path):
    runner = train(config(tree, tmp_path, tmp_path / 'cache'))
    choices = json.loads((tmp_path / 'adapter_choices.json').read_text())
    assert set(choices['search']) == {'alpha', 'beta', 'search_accuracy'}
    assert {c['split'] for c in choices['search'].values()} == {'val'}
    adapter = runner.model.adapter
    assert choices['search']['alpha']['value'] == float(adapter.alpha)
    assert choices['search']['beta']['value'] == float(adapter.beta)
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'alpha = ' in log and '(chosen on the val split)' in log
    # search_split='train': the training features choose.
    runner = train(
        config(
            tree, tmp_path / 'train', tmp_path / 'cache',
            search_split='train'))
    choices = json.loads(
        (tmp_path / 'train' / 'adapter_choices.json').read_text())
    assert {c['split'] for c in choices['search'].values()} == {'train'}


def test_checkpoint_tests_without_training_features(tree, tmp_path):
    """The last checkpoint holds the cache and the searched α, β: a new
    runner tests it (load_from) with the same result, images or
    features."""
    runner = train(config(tree, tmp_path / 'a', tmp_path / 'cache'))
    metrics = runner.test()
    cfg = config(tree, tmp_path / 'b', tmp_path / 'cache')
    cfg.load_from = str(tmp_path / 'a' / 'epoch_2.pth')
    cfg.custom_hooks.append(dict(type='CheckpointFitHook'))
    tester = Runner.from_cfg(cfg)
    assert tester.test() == metrics
    a, b = runner.model.adapter, tester.model.adapter
    assert torch.equal(a.cache_keys, b.cache_keys)
    assert float(a.alpha) == float(b.alpha)
    # On images, the model computes what it computes on cached features.
    dataset = tester.test_dataloader.dataset
    item = dataset.dataset[0]
    data = tester.model.data_preprocessor(
        dict(inputs=[item['inputs']], data_samples=None), False)
    torch.testing.assert_close(
        tester.model(data['inputs']), tester.model(dataset.features[0, :1]))


def test_training_free_saves_its_cache(tree, tmp_path):
    runner = train(
        config(tree, tmp_path, tmp_path / 'cache', epochs=0, finetune=False))
    assert (tmp_path / 'epoch_1.pth').is_file()
    assert not runner.model.adapter.trainable
    state = torch.load(tmp_path / 'epoch_1.pth', weights_only=False)
    assert state['state_dict']['adapter.cache_keys'].shape == (12, 64)


def test_resume_ends_where_an_uninterrupted_run_ends(tree, tmp_path):
    """--resume of Tip-Adapter-F: the loaded keys take the checkpoint's
    size as a new parameter, the optimizer and its state follow them."""
    cache = tmp_path / 'cache'
    whole = train(config(tree, tmp_path / 'whole', cache))
    # Killed after epoch 1: resumed from that epoch's checkpoint.
    (tmp_path / 'resumed').mkdir()
    shutil.copy(tmp_path / 'whole' / 'epoch_1.pth', tmp_path / 'resumed')
    cfg = config(tree, tmp_path / 'resumed', cache)
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'resumed' / 'epoch_1.pth')
    resumed = train(cfg)
    keys = resumed.model.adapter.cache_keys
    assert keys in resumed.optim_wrapper.optimizer.state
    torch.testing.assert_close(keys, whole.model.adapter.cache_keys)


def test_test_split_extracted_once_for_every_shot_count(tree, tmp_path):
    """The key is the items, not the shots and seed that chose them: the
    whole test split is one file for every few-shot run."""
    cache = tmp_path / 'cache'
    runners = []
    for shots in (2, 1):
        cfg = config(tree, tmp_path / f'{shots}shot', cache, epochs=0)
        for loader in ('train_dataloader', 'val_dataloader'):
            cfg[loader].dataset.dataset.num_shots = shots
        runner = train(cfg)
        assert extracted(runner) == 3 + 1  # its own training and val sets
        runner.test()
        runners.append(runner)
    assert extracted(runners[0]) == 4 + 1
    assert extracted(runners[1]) == 4 + 0
    assert len(runners[1].train_dataloader.dataset) == 3  # 1 shot x 3


def test_search_on_val_needs_a_val_loader(tree, tmp_path):
    cfg = config(tree, tmp_path, tmp_path / 'cache')
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    with pytest.raises(ValueError, match="search_split='val' needs a val"):
        train(cfg)
    assert not (tmp_path / 'cache').exists()  # refused before extracting
