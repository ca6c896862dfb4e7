_base_ = [
    '../_base_/models/coop.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/coop_1xb32-ep50.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(prompt_learner=dict(n_ctx=4, ctx_init='a photo of a')))

train_dataloader = dict(
    batch_size=32, drop_last=True, dataset=dict(num_shots=16))
val_cfg = None  # ImageNet: no val split
