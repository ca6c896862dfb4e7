# mmprompt's modules (datasets, models, hooks, schedulers) live in the
# 'mmprompt' scope; mmpretrain's and mmengine's resolve through it.
default_scope = 'mmprompt'
custom_imports = dict(imports=['mmprompt'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # A checkpoint after every epoch, written atomically, the last two kept
    # (the original keeps only the last, CHECKPOINT_FREQ=0): a crash costs
    # at most the epoch under way and `--resume` ends bit-identical to an
    # uninterrupted run (docs/reliability.md). A checkpoint holds the learned
    # prompt and its optimizer state only (tens of kilobytes).
    checkpoint=dict(
        type='SafeCheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Stops at the first infinite or NaN loss, naming the iteration, as the
    # original's `detect_anomaly`. Here rather than in custom_hooks, which
    # configs replace (the linear probe's `custom_hooks = []`).
    finite_loss=dict(type='FiniteLossHook'),
    # Off; mmpretrain's tools/test.py --show-dir turns it on to draw the
    # predictions.
    visualization=dict(type='VisualizationHook', enable=False),
)
# Gives the model the class names of the dataset of each stage (train,
# val, test), e.g. the new classes of a base-to-new test.
custom_hooks = [dict(type='ClassNamesHook')]

env_cfg = dict(
    # The original sets torch.backends.cudnn.benchmark = True.
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# TensorBoard instead of the local files (pip install tensorboard):
#   --cfg-options visualizer.vis_backends.0.type=TensorboardVisBackend
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False

# The run's seed. The few-shot draw has its own `seed` in each dataset
# (both are 1 here); the original uses one seed for both: change them
# together (see configs/coop/README.md).
randomness = dict(seed=1, deterministic=False)
