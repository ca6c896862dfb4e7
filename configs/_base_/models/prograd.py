# ProGrad (https://arxiv.org/abs/2205.14865): CoOp's prompt, 16 context
# vectors initialised from the words of the teacher's template (the
# original's CTX_INIT True: zero vectors, then the words), shared by all
# classes, class token at the end, trained on CE and the distillation
# loss to zero-shot CLIP (T 1) with the CE gradient projected away from
# the distillation gradient where they conflict (λ 1, in the optimizer
# wrapper, ../schedules/prograd_1xb32-ep100.py), on a frozen CLIP with
# OpenAI's weights. The dataset configs set `templates` to the dataset's
# name: its template in ProGrad's table (model.head.template_table).
# The backbone is one override, e.g. model.clip.arch='RN50' (the original's
# configs) or 'ViT-B-16'.
model = dict(
    type='PromptClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md).
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(
        type='ProGradHead',
        prompt_learner=dict(
            type='ProGradPromptLearner',
            n_ctx=16,
            ctx_init=True,
            csc=False,
            class_token_position='end'),
        templates='a photo of a {}.',
        template_table='prograd',
        temperature=1.0,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    # CLIP mean/std in 0-255; to_rgb as mmcv loads BGR.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
