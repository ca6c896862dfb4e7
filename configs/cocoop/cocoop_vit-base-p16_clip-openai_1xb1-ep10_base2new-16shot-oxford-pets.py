_base_ = [
    '../_base_/models/cocoop.py',
    '../_base_/datasets/oxford_pets.py',
    '../_base_/schedules/cocoop_1xb1-ep10.py',
    '../_base_/default_runtime.py',
]

# Base-to-new: train and test on the base classes.
train_dataloader = dict(
    batch_size=1,
    drop_last=True,
    dataset=dict(num_shots=16, subsample_classes='base'))
val_dataloader = dict(dataset=dict(num_shots=16, subsample_classes='base'))
test_dataloader = dict(dataset=dict(subsample_classes='base'))
