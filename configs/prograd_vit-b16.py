# ProGrad with CLIP ViT-B/16, base-to-new on OxfordPets: the original's
# base-to-new setting (base2new_train_prograd.sh: 4 shots of the 19 base
# classes, 100 epochs, batch 32, 16 context vectors from the template's
# words, λ 1, T 1) on ViT-B/16, for which the original has no config
# (model.clip.arch=RN50 is its own). Training tests on the base classes;
# test the new classes with the same checkpoint:
#
#   python tools/train.py configs/prograd_vit-b16.py
#   python tools/test.py configs/prograd_vit-b16.py \
#       work_dirs/prograd_vit-b16/epoch_100.pth
#   python tools/test.py configs/prograd_vit-b16.py \
#       work_dirs/prograd_vit-b16/epoch_100.pth \
#       --cfg-options test_dataloader.dataset.subsample_classes=new
#
# See configs/prograd/README.md for the other datasets and protocols.
_base_ = './prograd/prograd_resnet50_clip-openai_1xb32-ep100_base2new-4shot-oxford-pets.py'  # noqa: E501

model = dict(clip=dict(arch='ViT-B-16'))
