# CLIP-Adapter with CLIP RN50 (the original's backbone), 16 shots per class of
# ImageNet. The original releases no training configuration (its
# clip_adapter.py is a trainer for CoOp's Dassl code base): CoOp's few-shot
# schedule for ImageNet (SGD lr 0.002, momentum 0.9, weight decay 5e-4,
# batch 32, a constant 1e-5 first epoch, then cosine over 50 epochs). The
# training images' features are cached for 10 augmented views (CoOp's
# augmentation), epoch e reading view e % 10; the last epoch is tested, as
# CoOp's trainer.
_base_ = [
    '../_base_/models/clip_adapter.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/coop_1xb32-ep50.py',
    '../_base_/default_runtime.py',
]

model = dict(text=dict(templates='ImageNet'))

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    drop_last=True,
    dataset=dict(
        _delete_=True,
        type='CachedFeatureDataset',
        _scope_='mmprompt',
        views=10,
        dataset=dict(
            type={{_base_.dataset_type}},
            _scope_='mmprompt',
            data_root={{_base_.data_root}},
            split='train',
            num_shots=16,
            seed=1,
            subsample_classes='all',
            pipeline={{_base_.train_pipeline}})))
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CachedFeatureDataset',
        _scope_='mmprompt',
        dataset=dict(
            type={{_base_.dataset_type}},
            _scope_='mmprompt',
            data_root={{_base_.data_root}},
            split='test',
            num_shots=-1,
            seed=1,
            subsample_classes='all',
            pipeline={{_base_.test_pipeline}})))
# ImageNet has no val split (CoOp's is its test set): nothing is selected.
train_cfg = dict(
    _delete_=True,
    type='AdapterTrainLoop',
    max_epochs=50,
    search_split='train',
    val_interval=50)
val_cfg = None

custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
