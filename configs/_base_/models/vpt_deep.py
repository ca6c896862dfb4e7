# Deep visual prompt tuning (the original's VPT/vit_b16_c2_ep5_batch4_4,
# which despite its name learns 8 tokens): 8 vision tokens appended before
# the image tower's ln_pre and replaced before every vision block (depth
# 12), every injected copy rounded to fp16 as the original; the text side
# is the frozen features of "a photo of a {}." in fp32. Its schedule is
# MaPLe's with lr 0.0025: optim_wrapper.optimizer.lr=0.0025.
model = dict(
    type='PromptClassifier',
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    head=dict(
        type='VPTDeepHead',
        prompt_learner=dict(
            type='VPTDeepPromptLearner',
            n_vision_ctx=8,
            vision_depth=12,
            fp16_rounding=True),
        templates='a photo of a {}.',
        precision='fp32',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
