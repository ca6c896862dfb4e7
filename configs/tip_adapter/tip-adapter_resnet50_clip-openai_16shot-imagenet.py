# Training-free Tip-Adapter with CLIP RN50, 16 shots of ImageNet: the
# cache of Tip-Adapter-F's ImageNet config, no training (one epoch without
# iterations saves the cache as epoch_1.pth), alpha 1.17 and beta 1 kept
# (ImageNet has no validation split; the original's main_imagenet.py
# searches them on the test features).
_base_ = './tip-adapter-f_resnet50_clip-openai_1xb256-ep20_16shot-imagenet.py'

model = dict(adapter=dict(finetune=False))
train_cfg = dict(max_epochs=0, val_interval=1)
param_scheduler = dict(T_max=1)  # never stepped
