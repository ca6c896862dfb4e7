# Deep language prompting (the original's
# IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only): 4 text tokens per layer
# from 'a photo of a' before every text block (depth 12), no vision prompt
# (the image tower runs frozen, so any CLIP works: model.clip.arch='RN50');
# every injected copy rounded to fp16 as the original. Its schedule is
# MaPLe's with lr 0.0025: optim_wrapper.optimizer.lr=0.0025.
model = dict(
    type='PromptClassifier',
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(
        type='DeepPromptHead',
        prompt_learner=dict(
            type='DeepLanguagePromptLearner',
            n_ctx=4,
            ctx_init='a photo of a',
            text_depth=12,
            fp16_rounding=True),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
