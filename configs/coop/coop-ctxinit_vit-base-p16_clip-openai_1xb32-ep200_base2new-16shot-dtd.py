_base_ = [
    '../_base_/models/coop.py',
    '../_base_/datasets/dtd.py',
    '../_base_/schedules/coop_1xb32-ep200.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(prompt_learner=dict(n_ctx=4, ctx_init='a photo of a')))

# Base-to-new: train and test on the base classes.
train_dataloader = dict(
    batch_size=32,
    drop_last=True,
    dataset=dict(num_shots=16, subsample_classes='base'))
val_dataloader = dict(dataset=dict(num_shots=16, subsample_classes='base'))
test_dataloader = dict(dataset=dict(subsample_classes='base'))
