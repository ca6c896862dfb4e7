# CLIP-Adapter (gaopengcuhk/CLIP-Adapter): a residual bottleneck MLP on the
# UNNORMALISED image feature, f' = 0.2 * ReLU(W2 ReLU(W1 f)) + 0.8 * f
# (reduction 4, no biases), logits = exp(logit_scale) * cos(f', t) with the
# text features t of the dataset's CoOp template (configs set
# text.templates to the dataset). The adapter's width is the CLIP's (the
# original hard-codes RN50's 1024). CLIP RN50 as the original.
model = dict(
    type='AdapterClassifier',
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='RN50', pretrained='openai'),
    text=dict(templates='a photo of a {}.'),
    adapter=dict(type='CLIPAdapter', reduction=4, ratio=0.2),
    data_preprocessor=dict(
        type='AdapterDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
