# PromptSRC (https://arxiv.org/abs/2307.06948), the original's
# vit_b16_c2_ep20_batch4_4+4ctx: IVLP prompts, 4 text tokens per layer
# initialised from 'a photo of a' before the text blocks (depth 9) and 4
# vision tokens appended before the image tower's ln_pre and replaced before
# the vision blocks (depth 9), every injected copy rounded to fp16 as the
# original; trained with CE + 25 x L1 to the frozen CLIP's mean features of
# 60 hand-written templates + 10 x L1 to the frozen image features + the KL
# to the frozen CLIP's zero-shot logits (/ B*K), all from the one frozen
# CLIP ViT-B/16 with OpenAI's weights. The Gaussian prompt aggregation over
# the epochs is the schedule's custom hook.
model = dict(
    type='PromptClassifier',
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(
        type='PromptSRCHead',
        prompt_learner=dict(
            type='IVLPPromptLearner',
            n_ctx=4,
            ctx_init='a photo of a',
            text_depth=9,
            n_vision_ctx=4,
            vision_depth=9,
            fp16_rounding=True),
        text_loss_weight=25.0,
        image_loss_weight=10.0,
        templates='imagenet-60',
        teacher_fp16_rounding=True,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
