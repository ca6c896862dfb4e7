# Tip-Adapter-F with CLIP RN50, 16 shots of imagenet: the original's
# configs/imagenet.yaml (search_scale [beta, alpha] = [7, 3], init_alpha
# 1.17, init_beta 1, 20 epochs, 10 augmented views in the cache).
# Training-free Tip-Adapter with the same settings: --cfg-options
# model.adapter.finetune=False train_cfg.max_epochs=0 (configs/tip_adapter).
# ImageNet has no validation split (its val set is the test set): the
# original's main_imagenet.py searches alpha and beta on the TEST
# features; mmprompt keeps the initial alpha 1.17, beta 1 (search=None).
# A search on the training features is train_cfg.search_split='train'
# with model.adapter.search=dict(...).
_base_ = [
    '../_base_/models/tip_adapter_f.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/tip-adapter-f_1xb256-ep20.py',
    '../_base_/default_runtime.py',
]

model = dict(
    clip=dict(arch='RN50'),
    text=dict(templates='imagenet-7'),
    adapter=dict(
        alpha=1.17,
        beta=1.0,
        search=None))

# The cache and the training images: 10 views of tip_train_pipeline; the
# other splits: one view of the test transform. Features extracted once.
train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
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
            pipeline={{_base_.tip_train_pipeline}})))
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

train_cfg = dict(search_split='train')
val_cfg = None

custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
