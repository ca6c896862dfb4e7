_base_ = [
    '../_base_/models/zeroshot.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/default_runtime.py',
]

model = dict(clip=dict(arch='RN50'), head=dict(templates='ImageNet'))

# Test only: nothing is trained.
train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
val_dataloader = None
val_evaluator = None
val_cfg = None
test_cfg = dict()
