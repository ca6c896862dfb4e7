# The original CoOp's image pipelines (Dassl after 2021-10-09), the one
# definition every dataset config of configs/_base_/datasets uses. Train:
# RandomResizedCrop(224, scale (0.08, 1), bicubic) and a horizontal flip;
# test: the short edge resized to 224 (bicubic), then a 224 centre crop.
# CLIP's normalisation is the model's data_preprocessor.
# mmprompt.datasets.TRAIN_PIPELINE / TEST_PIPELINE are the same lists, which
# tests/test_datasets/test_pipelines.py checks pixel for pixel against the
# original's torchvision transforms; tests/test_configs checks that these
# two are those.
train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        aspect_ratio_range=(3. / 4., 4. / 3.),
        max_attempts=10,
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation'),
    dict(
        type='ResizeEdge',
        scale=224,
        edge='short',
        interpolation='bicubic',
        backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
