# The embedded demo with the CoOp paper's linear probe (lpclip): scikit-learn's
# logistic regression on the tiny CLIP's image features of the generated
# shapes (`python demo/base2new_demo.py` prepares both), every split through
# the test transform, C searched on the val features; all classes, 16 shots.
# Needs scikit-learn: pip install "mmprompt[lpclip]". The features are
# extracted once into work_dirs/<config>/feature_cache.
_base_ = ['./cocoop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py']

model = dict(
    _delete_=True,
    type='AdapterClassifier',
    _scope_='mmprompt',
    clip=dict(
        type='OpenCLIP',
        arch='mmprompt-tiny-vit',
        pretrained='data/mmprompt-demo/mmprompt-tiny-vit_shapes.pt'),
    adapter=dict(
        type='LogisticRegressionProbe',
        search_steps=8,
        max_iter=1000,
        search_split='val'))

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
        dataset=dict(images, split='train', pipeline=test_pipeline)))
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
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CachedFeatureDataset',
        _scope_='mmprompt',
        dataset=dict(images, split='test', pipeline=test_pipeline)))
val_evaluator = dict(type='Accuracy', topk=(1, ))
val_cfg = dict()

# Fitted before one epoch without iterations (epoch_1.pth); the optimizer
# is never stepped.
optim_wrapper = dict(_delete_=True, optimizer=dict(type='SGD', lr=0.0))
param_scheduler = None
train_cfg = dict(
    _delete_=True,
    type='AdapterTrainLoop',
    max_epochs=0,
    search_split='val',
    val_interval=1)
custom_hooks = [dict(type='ClassNamesHook'), dict(type='FeatureCacheHook')]
