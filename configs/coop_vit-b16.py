# CoOp with CLIP ViT-B/16, 16 shots per class, on OxfordPets: the quickest
# real run of the method (37 classes, a small download, a few minutes on
# one GPU), in the original's settings (M=16 random context, 200 epochs,
# batch 32). Other datasets, shots, seeds and backbones are overrides of
# this or of the configs in configs/coop (see configs/coop/README.md).
#
#   python tools/train.py configs/coop_vit-b16.py
#   python tools/test.py configs/coop_vit-b16.py \
#       work_dirs/coop_vit-b16/epoch_200.pth
_base_ = [
    './_base_/models/coop.py',
    './_base_/datasets/oxford_pets.py',
    './_base_/schedules/coop_1xb32-ep200.py',
    './_base_/default_runtime.py',
]

train_dataloader = dict(
    batch_size=32, drop_last=True, dataset=dict(num_shots=16))
val_dataloader = dict(dataset=dict(num_shots=16))
