_base_ = [
    '../_base_/models/zeroshot.py',
    '../_base_/datasets/caltech101.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(templates='Caltech101'))

# Base-to-new: the base classes of the test set.
test_dataloader = dict(dataset=dict(subsample_classes='base'))

# Test only: nothing is trained.
train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
val_dataloader = None
val_evaluator = None
val_cfg = None
test_cfg = dict()
