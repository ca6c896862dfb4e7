# CoCoOp with CLIP ViT-B/16, base-to-new on OxfordPets, 16 shots of the 19
# base classes: the paper's setting (vit_b16_c4_ep10_batch1_ctxv1) on its
# smallest quick dataset. Training tests on the base classes; test the new
# classes with the same checkpoint:
#
#   python tools/train.py configs/cocoop_vit-b16.py
#   python tools/test.py configs/cocoop_vit-b16.py \
#       work_dirs/cocoop_vit-b16/epoch_10.pth
#   python tools/test.py configs/cocoop_vit-b16.py \
#       work_dirs/cocoop_vit-b16/epoch_10.pth \
#       --cfg-options test_dataloader.dataset.subsample_classes=new
#
# See configs/cocoop/README.md for the other datasets and protocols.
_base_ = './cocoop/cocoop_vit-base-p16_clip-openai_1xb1-ep10_base2new-16shot-oxford-pets.py'  # noqa: E501
