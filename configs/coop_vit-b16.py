# CoOp with CLIP ViT-B/16, 16 shots per class, on OxfordPets: the quickest
# real run of the method (37 classes, a small download, a few minutes on
# one GPU). Everything comes from the method config below; see
# configs/coop/README.md for the other datasets, shots and backbones.
#
#   python tools/train.py configs/coop_vit-b16.py
#   python tools/test.py configs/coop_vit-b16.py \
#       work_dirs/coop_vit-b16/epoch_200.pth
_base_ = './coop/coop_vit-base-p16_clip-openai_1xb32-ep200_16shot-oxford-pets.py'  # noqa: E501
