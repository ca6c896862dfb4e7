# Tip-Adapter-F with CLIP RN50, 16 shots of oxford flowers: the original's
# configs/oxford_flowers.yaml (search_scale [beta, alpha] = [50, 50],
# init_alpha 10, init_beta 1, 20 epochs, 10 augmented views in the cache).
# Training-free Tip-Adapter with the same settings: --cfg-options
# model.adapter.finetune=False train_cfg.max_epochs=0 (configs/tip_adapter).
_base_ = [
    '../_base_/models/tip_adapter_f.py',
    '../_base_/datasets/oxford_flowers.py',
    '../_base_/schedules/tip-adapter-f_1xb256-ep20.py',
    '../_base_/default_runtime.py',
]

model = dict(
    clip=dict(arch='RN50'),
    text=dict(templates={{_base_.dataset_type}}),
    adapter=dict(
        alpha=10.0,
        beta=1.0,
        search=dict(
            alpha_max=50.0,
            alpha_steps=20,
            beta_max=50.0,
            beta_steps=200)))

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
# The few-shot validation set (min(16, 4) images per class); the
# original's main.py searches on the whole val split:
# val_dataloader.dataset.dataset.num_shots=-1.
val_dataloader = dict(
    batch_size=256,
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

custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
