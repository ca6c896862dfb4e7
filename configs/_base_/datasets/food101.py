# Food101 (101 classes), original CoOp layout: docs/datasets.md.
_base_ = './pipelines.py'

dataset_type = 'Food101'
# _scope_='mmprompt' on every dataset below: mmprompt's dataset of this
# name also where mmpretrain's tools and APIs make 'mmpretrain' the
# default scope (docs/mmpretrain_tools.md).
data_root = 'data/food-101'

# Few-shot train set (16 shots of seed 1 by default); drop_last is
# the original's `len(dataset) >= batch_size` for this size: configs with
# fewer images than the batch set it to False.
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        _scope_='mmprompt',
        data_root=data_root,
        split='train',
        num_shots=16,
        seed=1,
        subsample_classes='all',
        pipeline={{_base_.train_pipeline}}))

# The few-shot val set: min(num_shots, 4) images per class, of the same
# draw as train.
val_dataloader = dict(
    batch_size=100,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        _scope_='mmprompt',
        data_root=data_root,
        split='val',
        num_shots=16,
        seed=1,
        subsample_classes='all',
        pipeline={{_base_.test_pipeline}}))
val_evaluator = dict(type='Accuracy', topk=(1, ))

# The full test set (never few-shot sampled).
test_dataloader = dict(
    batch_size=100,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        _scope_='mmprompt',
        data_root=data_root,
        split='test',
        num_shots=-1,
        seed=1,
        subsample_classes='all',
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(type='Accuracy', topk=(1, ))
