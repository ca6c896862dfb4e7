_base_ = [
    '../_base_/models/promptsrc.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/promptsrc_1xb4-ep20.py',
    '../_base_/default_runtime.py',
]

# Base-to-new: train and test on the base classes.
train_dataloader = dict(
    batch_size=4,
    drop_last=True,
    dataset=dict(num_shots=16, subsample_classes='base'))
val_cfg = None  # ImageNet: no val split
test_dataloader = dict(dataset=dict(subsample_classes='base'))

# Gaussian prompt aggregation (GPA) of the learnable tensors over the 20
# epochs; average_frozen=True also averages the frozen CLIP as the original
# does (a 2e-7 drift of its weights, for equality checks only).
custom_hooks = [
    dict(type='ClassNamesHook'),
    dict(type='GaussianPromptAggregationHook', mean=15, std=1),
]
