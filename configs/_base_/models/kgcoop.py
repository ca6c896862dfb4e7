# KgCoOp (https://arxiv.org/abs/2303.13283): CoOp's prompt, 4 context
# tokens initialised from 'a photo of a', shared by all classes, class
# token at the end, trained with CE + 8.0 * (1 - mean_i cos(g_i, w_clip_i))
# toward the frozen CLIP's features of the hand-written prompt (the
# original's base-to-new scripts), on a frozen CLIP ViT-B/16 with OpenAI's
# weights. The dataset configs set `templates` to the dataset's name: its
# template in KgCoOp's table (model.head.template_table='kgcoop').
# The backbone is one override, e.g. model.clip.arch='RN50' (or 'RN101',
# 'ViT-B-32'; any open_clip arch with the matching `pretrained`).
model = dict(
    type='PromptClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md).
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(
        type='KgCoOpHead',
        prompt_learner=dict(
            type='CoOpPromptLearner',
            n_ctx=4,
            ctx_init='a photo of a',
            csc=False,
            class_token_position='end'),
        templates='a photo of a {}.',
        template_table='kgcoop',
        kg_weight=8.0,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    # CLIP mean/std in 0-255; to_rgb as mmcv loads BGR.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
