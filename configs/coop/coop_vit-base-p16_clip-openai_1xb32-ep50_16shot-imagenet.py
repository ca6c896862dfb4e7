_base_ = [
    '../_base_/models/coop.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/coop_1xb32-ep50.py',
    '../_base_/default_runtime.py',
]

train_dataloader = dict(
    batch_size=32, drop_last=True, dataset=dict(num_shots=16))
val_cfg = None  # ImageNet: no val split
