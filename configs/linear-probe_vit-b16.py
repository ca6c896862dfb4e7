# The CoOp paper's linear probe (lpclip) with CLIP ViT-B/16, 16 shots per
# class, on OxfordPets: scikit-learn's logistic regression on the frozen
# image features (the test transform, as the original's feat_extractor.py),
# C searched on the 4-shot val set's features, in seconds once the features
# are cached. Needs scikit-learn: pip install "mmprompt[lpclip]". Other
# datasets, shots, seeds and backbones: configs/linear_probe/README.md.
#
#   python tools/train.py configs/linear-probe_vit-b16.py
#   python tools/test.py configs/linear-probe_vit-b16.py \
#       work_dirs/linear-probe_vit-b16/epoch_1.pth
_base_ = [
    './_base_/models/lpclip.py',
    './_base_/datasets/oxford_pets.py',
    './_base_/schedules/fit-only.py',
    './_base_/default_runtime.py',
]

# Every split through the test transform, its features extracted once.
train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    dataset=dict(
        _delete_=True,
        type='CachedFeatureDataset',
        _scope_='mmprompt',
        dataset=dict(
            type={{_base_.dataset_type}},
            _scope_='mmprompt',
            data_root={{_base_.data_root}},
            split='train',
            num_shots=16,
            seed=1,
            subsample_classes='all',
            pipeline={{_base_.test_pipeline}})))
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

# The class names from the data; the features extracted once and cached.
custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
