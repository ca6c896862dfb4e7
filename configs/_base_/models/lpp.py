# LP++ (FereshteShakeri/FewShot-CLIP-Strong-Baseline, CVPR 2024): a linear
# probe with a text term, logits = f W^T + b + alpha * (f T^T) on normalised
# image features, fitted full batch for 300 epochs with the original's
# data-driven step sizes, the epoch chosen on the val features. The text
# features T: the dataset's hand-written template (Tip-Adapter's, which LP++
# uses; ImageNet: the 7-template ensemble 'imagenet-7'), each template's
# feature normalised, averaged, normalised. CLIP RN50 as the original's
# configs/base.yaml.
model = dict(
    type='AdapterClassifier',
    _scope_='mmprompt',
    clip=dict(type='OpenCLIP', arch='RN50', pretrained='openai'),
    text=dict(templates='a photo of a {}.', aggregation='normalize_mean'),
    adapter=dict(
        type='LPPlusPlus',
        epochs=300,
        alpha_every=10,
        alpha_scale=250.0,
        momentum=0.9,
        alpha_grad='accumulated'),
    data_preprocessor=dict(
        type='AdapterDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
