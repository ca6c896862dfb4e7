# LP++ with CLIP RN50, 4 shots per class, OxfordPets (the original's
# configs/base.yaml: RN50, 4 shots, 300 epochs): one augmented view of the
# training images (Tip-Adapter's augmentation, as the original draws one
# augmented pass per task), the epoch chosen on the val features (4 per
# class here as in the original's K-shot val set at K = 4), every split's
# features cached.
_base_ = [
    '../_base_/models/lpp.py',
    '../_base_/datasets/oxford_pets.py',
    '../_base_/schedules/fit-only.py',
    '../_base_/default_runtime.py',
]

model = dict(text=dict(templates='OxfordPets'))

train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    dataset=dict(
        _delete_=True,
        type='CachedFeatureDataset',
        _scope_='mmprompt',
        views=1,
        dataset=dict(
            type={{_base_.dataset_type}},
            _scope_='mmprompt',
            data_root={{_base_.data_root}},
            split='train',
            num_shots=4,
            seed=1,
            subsample_classes='all',
            pipeline={{_base_.tip_train_pipeline}})))
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
            num_shots=4,
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

custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
