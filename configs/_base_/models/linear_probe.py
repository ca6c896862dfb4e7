# Linear probe of CLIP ViT-B/16: a linear classifier on the frozen image
# features of CLIP's own tower, after its projection (512-d), as the
# original extracts them (clip_model.visual(x)). The weights come from
# model.backbone.pretrained, in any form OpenCLIP takes. Another backbone
# is model.backbone.arch plus its feature size, model.head.in_channels:
# 1024 for 'RN50', 512 for 'RN101' and 'ViT-B-32'.
model = dict(
    type='ImageClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md).
    _scope_='mmprompt',
    backbone=dict(
        type='OpenCLIPImageBackbone', arch='ViT-B-16', pretrained='openai'),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
