_base_ = [
    '../_base_/models/kgcoop.py',
    '../_base_/datasets/caltech101.py',
    '../_base_/schedules/kgcoop_1xb128-ep100.py',
    '../_base_/default_runtime.py',
]

# The teacher's prompt: this dataset's template in KgCoOp's table.
model = dict(head=dict(templates='Caltech101'))

# Base-to-new: train and test on the base classes.
train_dataloader = dict(
    batch_size=128,
    drop_last=True,
    dataset=dict(num_shots=16, subsample_classes='base'))
val_dataloader = dict(dataset=dict(num_shots=16, subsample_classes='base'))
test_dataloader = dict(dataset=dict(subsample_classes='base'))
