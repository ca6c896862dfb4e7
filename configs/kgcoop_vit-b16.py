# KgCoOp with CLIP ViT-B/16, base-to-new on OxfordPets, 16 shots of the 19
# base classes: the original's default (vit_b16_ep100_ctxv1, W 8.0, batch
# 128, 100 epochs) on the smallest quick dataset. Training tests on the
# base classes; test the new classes with the same checkpoint:
#
#   python tools/train.py configs/kgcoop_vit-b16.py
#   python tools/test.py configs/kgcoop_vit-b16.py \
#       work_dirs/kgcoop_vit-b16/epoch_100.pth
#   python tools/test.py configs/kgcoop_vit-b16.py \
#       work_dirs/kgcoop_vit-b16/epoch_100.pth \
#       --cfg-options test_dataloader.dataset.subsample_classes=new
#
# See configs/kgcoop/README.md for the other datasets and protocols.
_base_ = './kgcoop/kgcoop_vit-base-p16_clip-openai_1xb128-ep100_base2new-16shot-oxford-pets.py'  # noqa: E501
