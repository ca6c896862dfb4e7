# The CoOp paper's linear probe (`lpclip/` of KaiyangZhou/CoOp): scikit-learn's
# L-BFGS logistic regression (max_iter 1000) on the UNNORMALISED image
# features of CLIP (ViT-B/16 here; the original hard-codes RN50:
# model.clip.arch='RN50'), C searched on the few-shot validation features:
# the grid 1e6 .. 1e-6, then 8 one-sided binary-search steps in log10.
# Needs scikit-learn: pip install "mmprompt[lpclip]". The text features are
# not used by the probe (AdapterClassifier computes them for the classes).
model = dict(
    type='AdapterClassifier',
    # mmprompt's scope also under mmpretrain's tools and APIs, which set
    # theirs (docs/mmpretrain_tools.md).
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='ViT-B-16', pretrained='openai'),
    adapter=dict(
        type='LogisticRegressionProbe',
        search_steps=8,
        max_iter=1000,
        search_split='val'),
    # CLIP mean/std in 0-255; to_rgb as mmcv loads BGR. Cached features
    # pass through unchanged.
    data_preprocessor=dict(
        type='AdapterDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
