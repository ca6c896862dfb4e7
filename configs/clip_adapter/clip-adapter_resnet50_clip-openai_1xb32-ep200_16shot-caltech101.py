# CLIP-Adapter with CLIP RN50, 16 shots per class of Caltech101 (the dataset
# of CoOp's few-shot example config; the start of run_sweep.py's few-shot
# sweep). CoOp's few-shot schedule (SGD lr 0.002, momentum 0.9, weight decay
# 5e-4, batch 32, a constant 1e-5 first epoch, then cosine over 200 epochs
# at 16 shots); 10 cached augmented views of the training images, epoch e
# reading view e % 10; the last epoch is tested, nothing is selected.
_base_ = [
    '../_base_/models/clip_adapter.py',
    '../_base_/datasets/caltech101.py',
    '../_base_/schedules/coop_1xb32-ep200.py',
    '../_base_/default_runtime.py',
]

model = dict(text=dict(templates='Caltech101'))

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
val_dataloader = dict(
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
            split='val',
            num_shots=16,
            seed=1,
            subsample_classes='all',
            pipeline={{_base_.test_pipeline}})))
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
train_cfg = dict(
    _delete_=True,
    type='AdapterTrainLoop',
    max_epochs=200,
    search_split='val',
    val_interval=200)

custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
