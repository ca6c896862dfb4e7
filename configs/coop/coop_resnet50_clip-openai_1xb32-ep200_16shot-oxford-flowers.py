_base_ = [
    '../_base_/models/coop.py',
    '../_base_/datasets/oxford_flowers.py',
    '../_base_/schedules/coop_1xb32-ep200.py',
    '../_base_/default_runtime.py',
]

model = dict(clip=dict(arch='RN50'))

train_dataloader = dict(
    batch_size=32, drop_last=True, dataset=dict(num_shots=16))
val_dataloader = dict(dataset=dict(num_shots=16))
