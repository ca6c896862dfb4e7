# IVLP with CLIP ViT-B/16, base-to-new on OxfordPets, 16 shots of the 19
# base classes: the original's default (IVLP/vit_b16_c2_ep5_batch4_2+2ctx: 2+2
# tokens, depth 12, batch 4, lr 0.0035, 5 epochs) on the smallest quick
# dataset. Training tests on the base classes; test the new classes with
# the same checkpoint:
#
#   python tools/train.py configs/ivlp_vit-b16.py
#   python tools/test.py configs/ivlp_vit-b16.py \
#       work_dirs/ivlp_vit-b16/epoch_5.pth
#   python tools/test.py configs/ivlp_vit-b16.py \
#       work_dirs/ivlp_vit-b16/epoch_5.pth \
#       --cfg-options test_dataloader.dataset.subsample_classes=new
#
# See configs/ivlp/README.md for the other datasets and protocols.
_base_ = './ivlp/ivlp_vit-base-p16_clip-openai_1xb4-ep5_base2new-16shot-oxford-pets.py'  # noqa: E501
