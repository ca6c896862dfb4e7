# The CoOp paper's linear probe (lpclip) with CLIP ViT-B-16, 16 shots per class
# of ImageNet: the RN50 config's settings (every split through the test
# transform, C chosen on the training features since CoOp's ImageNet has no
# held-out split; see README.md) on the ViT-B/16 image tower.
_base_ = './linear-probe_resnet50_clip-openai_16shot-imagenet.py'

model = dict(clip=dict(arch='ViT-B-16'))
