# IVLP, independent vision-language prompting (MaPLe's baseline, the
# original's IVLP/vit_b16_c2_ep5_batch4_2+2ctx): 2 text tokens per layer
# from 'a photo of a' (the first 2 learned, "of a" kept as fixed text)
# before every text block (depth 12), and independently 2 vision tokens
# appended before the image tower's ln_pre and replaced before every vision
# block (depth 12), every injected copy rounded to fp16 as the original; on
# a frozen CLIP ViT-B/16 with OpenAI's weights. PromptSRC's IVLP baseline
# (4+4 tokens, depth 9, 20 epochs, lr 0.0025) is overrides:
# configs/ivlp/README.md.
model = dict(
    type='PromptClassifier',
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(
        type='DeepPromptHead',
        prompt_learner=dict(
            type='IVLPPromptLearner',
            n_ctx=2,
            ctx_init='a photo of a',
            text_depth=12,
            n_vision_ctx=2,
            vision_depth=12,
            fp16_rounding=True),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
