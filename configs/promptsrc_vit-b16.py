# PromptSRC with CLIP ViT-B/16, base-to-new on OxfordPets, 16 shots of the
# 19 base classes: the original's default (vit_b16_c2_ep20_batch4_4+4ctx:
# IVLP 4+4 tokens, depth 9, lambda_text 25, lambda_image 10, batch 4, lr
# 0.0025, 20 epochs, GPA mean 15 std 1) on the smallest quick dataset.
# Training tests on the base classes; test the new classes with the same
# checkpoint (the last epoch's, which holds the aggregated prompts):
#
#   python tools/train.py configs/promptsrc_vit-b16.py
#   python tools/test.py configs/promptsrc_vit-b16.py \
#       work_dirs/promptsrc_vit-b16/epoch_20.pth
#   python tools/test.py configs/promptsrc_vit-b16.py \
#       work_dirs/promptsrc_vit-b16/epoch_20.pth \
#       --cfg-options test_dataloader.dataset.subsample_classes=new
#
# See configs/promptsrc/README.md for the other datasets and protocols.
_base_ = './promptsrc/promptsrc_vit-base-p16_clip-openai_1xb4-ep20_base2new-16shot-oxford-pets.py'  # noqa: E501
