# The CoOp paper's linear probe (lpclip) with CLIP ViT-B-16, 16 shots per class
# of ImageNet, every split through the test transform. CoOp's ImageNet has no
# held-out split (its val split is the test set, on which the original's
# lpclip chooses C): C is chosen on the training features here
# (search_split='train'), see README.md.
_base_ = [
    '../_base_/models/lpclip.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/fit-only.py',
    '../_base_/default_runtime.py',
]

model = dict(clip=dict(arch='ViT-B-16'), adapter=dict(search_split='train'))
train_cfg = dict(search_split='train')
val_cfg = None

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
