# Zero-shot CLIP: hand-written prompts, nothing learned, on CLIP ViT-B/16
# with OpenAI's weights. Configs set the template (CoOp's per-dataset one,
# e.g. templates='DescribableTextures', or an ensemble, 'imagenet-7').
# The backbone is one override, e.g. model.clip.arch='RN50' (or 'RN101',
# 'ViT-B-32'; any open_clip arch with the matching `pretrained`).
model = dict(
    type='PromptClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md).
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(type='ZeroShotHead', templates='a photo of a {}.'),
    # CLIP mean/std in 0-255; to_rgb as mmcv loads BGR.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
