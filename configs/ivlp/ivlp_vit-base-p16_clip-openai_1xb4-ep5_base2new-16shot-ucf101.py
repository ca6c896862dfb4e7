_base_ = [
    '../_base_/models/ivlp.py',
    '../_base_/datasets/ucf101.py',
    '../_base_/schedules/maple_1xb4-ep5.py',
    '../_base_/default_runtime.py',
]

# Base-to-new: train and test on the base classes.
train_dataloader = dict(
    batch_size=4,
    drop_last=True,
    dataset=dict(num_shots=16, subsample_classes='base'))
val_dataloader = dict(dataset=dict(num_shots=16, subsample_classes='base'))
test_dataloader = dict(dataset=dict(subsample_classes='base'))
