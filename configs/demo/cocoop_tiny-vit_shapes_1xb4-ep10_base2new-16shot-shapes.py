# The embedded demo: CoCoOp base-to-new on generated coloured shapes with a
# tiny CLIP (mmprompt/demo/ makes both on first use).
# `python demo/base2new_demo.py` prepares the data and runs it. The settings
# are CoCoOp's paper config (4 context tokens from 'a photo of a', 10 epochs,
# SGD lr 0.002, constant warm-up then cosine) except the batch (4, not 1),
# which lets the demo finish within a minute on a CPU.
default_scope = 'mmprompt'
custom_imports = dict(imports=['mmprompt'], allow_failed_imports=False)

data_root = 'data/mmprompt-demo'
image_size = 32  # mmprompt-tiny-vit's input

model = dict(
    type='PromptClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md); the same on the dataset.
    _scope_='mmprompt',
    clip=dict(
        type='OpenCLIP',
        arch='mmprompt-tiny-vit',
        pretrained=data_root + '/mmprompt-tiny-vit_shapes.pt'),
    head=dict(
        type='CoCoOpHead',
        prompt_learner=dict(
            type='CoCoOpPromptLearner', n_ctx=4, ctx_init='a photo of a')),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))

train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation'),
    dict(
        type='RandomResizedCrop',
        scale=image_size,
        crop_ratio_range=(0.08, 1.0),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation'),
    dict(
        type='ResizeEdge',
        scale=image_size,
        edge='short',
        interpolation='bicubic',
        backend='pillow'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs'),
]

dataset = dict(
    type='SplitJsonDataset',
    _scope_='mmprompt',
    data_root=data_root,
    split_file='split_zhou_Shapes.json',
    image_dir='images',
    num_shots=16,
    seed=1,
    subsample_classes='base')
# Loaded in the main process: persistent_workers=False also under
# mmpretrain's tools/train.py, which turns it on unless a config says.
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    drop_last=True,
    dataset=dict(**dataset, split='train', pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, split='test', pipeline=test_pipeline))
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_cfg = dict()

max_epochs = 10
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.002, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='ConstantWarmupCosineLR', T_max=max_epochs, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=16),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # As configs/_base_/default_runtime.py: atomic checkpoints every epoch,
    # the last two kept, and a stop at the first non-finite loss.
    checkpoint=dict(type='SafeCheckpointHook', interval=1, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    finite_loss=dict(type='FiniteLossHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
custom_hooks = [dict(type='ClassNamesHook')]
# As configs/_base_/default_runtime.py (TensorBoard: --cfg-options
# visualizer.vis_backends.0.type=TensorboardVisBackend).
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True)
log_level = 'INFO'
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
randomness = dict(seed=1)
load_from = None
resume = False
