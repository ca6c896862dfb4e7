# CoOp (https://arxiv.org/abs/2109.01134): 16 learned context tokens, random
# init, shared by all classes, class token at the end (the original's
# defaults), on a frozen CLIP ViT-B/16 with OpenAI's weights.
# The backbone is one override, e.g. model.clip.arch='RN50' (or 'RN101',
# 'ViT-B-32'; any open_clip arch with the matching `pretrained`).
model = dict(
    type='PromptClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md).
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(
        type='CoOpHead',
        prompt_learner=dict(
            type='CoOpPromptLearner',
            n_ctx=16,
            ctx_init='',
            csc=False,
            class_token_position='end'),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    # CLIP mean/std in 0-255; to_rgb as mmcv loads BGR.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
