_base_ = [
    '../_base_/models/cocoop.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/cocoop_1xb1-ep10.py',
    '../_base_/default_runtime.py',
]

train_dataloader = dict(
    batch_size=1, drop_last=True, dataset=dict(num_shots=16))
val_cfg = None  # ImageNet: no val split
