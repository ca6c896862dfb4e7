_base_ = [
    '../_base_/models/prograd.py',
    '../_base_/datasets/eurosat.py',
    '../_base_/schedules/prograd_1xb32-ep100.py',
    '../_base_/default_runtime.py',
]

# The original's base-to-new setting (base2new_train_prograd.sh): RN50,
# 4 shots of the base classes; the teacher's prompt is this dataset's
# template in ProGrad's table.
model = dict(clip=dict(arch='RN50'), head=dict(templates='EuroSAT'))

# Base-to-new: train and test on the base classes.
train_dataloader = dict(
    batch_size=32,
    drop_last=False,
    dataset=dict(num_shots=4, subsample_classes='base'))
val_dataloader = dict(dataset=dict(num_shots=4, subsample_classes='base'))
test_dataloader = dict(dataset=dict(subsample_classes='base'))
