# The embedded demo with Tip-Adapter-F: the original's settings (a cache of
# 10 augmented views, AdamW lr 0.001 eps 1e-4, cosine per iteration, 20
# epochs, alpha/beta searched on the validation features after training)
# on the generated shapes and the tiny CLIP (`python demo/base2new_demo.py`
# prepares both), all classes, 16 shots. The features are extracted once
# into work_dirs/<config>/feature_cache and read from there by later runs.
_base_ = ['./cocoop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py']

model = dict(
    _delete_=True,
    type='AdapterClassifier',
    _scope_='mmprompt',
    clip=dict(
        type='OpenCLIP',
        arch='mmprompt-tiny-vit',
        pretrained='data/mmprompt-demo/mmprompt-tiny-vit_shapes.pt'),
    text=dict(templates='a photo of a {}.'),
    adapter=dict(
        type='TipAdapter',
        finetune=True,
        alpha=1.0,
        beta=1.0,
        # A coarser grid than the original's 200 x 20 on 11 classes.
        search=dict(
            alpha_max=10., alpha_steps=20, beta_max=10., beta_steps=20)))

image_size = 32
# Tip-Adapter's augmentation of the cache and of the training images.
tip_train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation'),
    dict(
        type='RandomResizedCrop',
        scale=image_size,
        crop_ratio_range=(0.5, 1.0),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = {{_base_.test_pipeline}}
images = dict(
    type='SplitJsonDataset',
    data_root='data/mmprompt-demo',
    split_file='split_zhou_Shapes.json',
    image_dir='images',
    num_shots=16,
    seed=1,
    subsample_classes='all')

train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    drop_last=False,
    dataset=dict(
        _delete_=True,
        type='CachedFeatureDataset',
        _scope_='mmprompt',
        views=10,
        dataset=dict(images, split='train', pipeline=tip_train_pipeline)))
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CachedFeatureDataset',
        _scope_='mmprompt',
        dataset=dict(images, split='val', pipeline=test_pipeline)))
test_dataloader = dict(
    batch_size=256,
    dataset=dict(
        _delete_=True,
        type='CachedFeatureDataset',
        _scope_='mmprompt',
        dataset=dict(images, split='test', pipeline=test_pipeline)))
val_evaluator = dict(type='Accuracy', topk=(1, ))
val_cfg = dict()

max_epochs = 20
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=0.001, eps=1e-4, weight_decay=0.01))
param_scheduler = dict(
    _delete_=True,
    type='CosineAnnealingLR',
    T_max=max_epochs,
    by_epoch=True,
    convert_to_iter_based=True)
train_cfg = dict(
    _delete_=True,
    type='AdapterTrainLoop',
    max_epochs=max_epochs,
    search_split='val',
    val_interval=max_epochs)
custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
