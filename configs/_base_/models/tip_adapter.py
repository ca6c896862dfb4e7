# Tip-Adapter (training-free; gaopengcuhk/Tip-Adapter d0e2d6f): a cache of
# the few-shot training set, keys = the normalised mean of the raw CLIP
# features of 10 augmented views (tip_train_pipeline), values = one-hot
# labels; logits = 100 f W^T + alpha exp(-beta (1 - f K^T)) L, W the
# normalised zero-shot features of the dataset's template (ImageNet: the 7
# 'imagenet-7' templates), normalised per template, averaged, normalised.
# alpha (the cache's weight) and beta (the affinity's sharpness) are named
# as in the paper and the original code alike; after the cache is built
# they are chosen on the grid 0.1 + i (max - 0.1) / steps (200 beta x 20
# alpha values) by accuracy on the validation features, never the test
# features. The original's per-dataset init_alpha and search_scale
# [beta_max, alpha_max] are in each dataset's config (configs/tip_adapter).
model = dict(
    type='AdapterClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md).
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    text=dict(templates='a photo of a {}.'),
    adapter=dict(
        type='TipAdapter',
        alpha=1.0,
        beta=1.0,
        finetune=False,
        search=dict(
            alpha_max=50., alpha_steps=20, beta_max=50., beta_steps=200),
        logit_scale=100.,
        precision='fp32'),
    # CLIP mean/std in 0-255; to_rgb as mmcv loads BGR. Cached features
    # pass through unchanged.
    data_preprocessor=dict(
        type='AdapterDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
