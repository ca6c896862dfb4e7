# Tip-Adapter-F with CLIP ViT-B/16, 16 shots per class, on OxfordPets: the
# original's settings for the dataset (configs/oxford_pets.yaml: init
# alpha 1.17, beta 1, search_scale [beta, alpha] = [7, 3], 20 epochs of
# AdamW on the cache keys, 10 augmented views), alpha and beta searched on
# the 4-shot validation features after training. The features are extracted
# once (work_dirs/<config>/feature_cache, or FeatureCacheHook's cache_dir)
# and training takes seconds after that.
#
#   python tools/train.py configs/tip-adapter-f_vit-b16.py
#   python tools/test.py configs/tip-adapter-f_vit-b16.py \
#       work_dirs/tip-adapter-f_vit-b16/epoch_20.pth
#
# Training-free Tip-Adapter: --cfg-options model.adapter.finetune=False
# train_cfg.max_epochs=0 (then epoch_1.pth). Other datasets, shots, seeds
# and the original's fp16: configs/tip_adapter/README.md.
_base_ = './tip_adapter/tip-adapter-f_resnet50_clip-openai_1xb256-ep20_16shot-oxford-pets.py'  # noqa: E501

model = dict(clip=dict(arch='ViT-B-16'))
