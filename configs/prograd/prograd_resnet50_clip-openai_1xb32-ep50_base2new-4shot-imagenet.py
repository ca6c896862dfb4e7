_base_ = [
    '../_base_/models/prograd.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/prograd_1xb32-ep100.py',
    '../_base_/default_runtime.py',
]

# The original's base-to-new setting (base2new_train_prograd.sh): RN50,
# 4 shots of the base classes; the teacher's prompt is this dataset's
# template in ProGrad's table.
model = dict(clip=dict(arch='RN50'), head=dict(templates='ImageNet'))

# Base-to-new: train and test on the base classes.
train_dataloader = dict(
    batch_size=32,
    drop_last=True,
    dataset=dict(num_shots=4, subsample_classes='base'))
val_cfg = None  # ImageNet: no val split
test_dataloader = dict(dataset=dict(subsample_classes='base'))

# ImageNet: 50 epochs (the original's README: rn50_ep50, --load-epoch 50).
param_scheduler = dict(T_max=50)
train_cfg = dict(max_epochs=50, val_interval=50)
