# ImageNet-R (200 classes), original CoOp layout: docs/datasets.md.
_base_ = './pipelines.py'

dataset_type = 'ImageNetR'
# _scope_='mmprompt' on every dataset below: mmprompt's dataset of this
# name also where mmpretrain's tools and APIs make 'mmpretrain' the
# default scope (docs/mmpretrain_tools.md).
data_root = 'data/imagenet-rendition'

# Test only: every split gives the same images.
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
