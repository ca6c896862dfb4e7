# MaPLe (https://arxiv.org/abs/2210.03117): 2 text tokens per layer from
# 'a photo of a' (the first 2 tokens learned, "of a" kept as fixed text),
# written before the text blocks 1..8 (depth 9 counts the input as 1), and
# vision tokens coupled to them: proj(ctx) appended before the image
# tower's ln_pre, F_j(P_j) before vision blocks 1..8, every injected copy
# rounded to fp16 as the original (fp16_rounding=False turns it off); on a
# frozen CLIP ViT-B/16 with OpenAI's weights (the original's
# vit_b16_c2_ep5_batch4_2ctx). Any open_clip ViT pooled at its class token:
# model.clip.arch='ViT-L-14' (widths from the model).
model = dict(
    type='PromptClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md).
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(
        type='DeepPromptHead',
        prompt_learner=dict(
            type='MaPLePromptLearner',
            n_ctx=2,
            ctx_init='a photo of a',
            depth=9,
            fp16_rounding=True),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    # CLIP mean/std in 0-255; to_rgb as mmcv loads BGR.
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
