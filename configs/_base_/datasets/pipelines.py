# The original CoOp's image pipelines (Dassl after 2021-10-09), the one
# definition of them in mmprompt: every dataset config of
# configs/_base_/datasets uses it. The original reads images with
# PIL.Image.open(path).convert('RGB') and applies torchvision transforms:
#   train: RandomResizedCrop(224, scale=(0.08, 1.0), BICUBIC), then
#          RandomHorizontalFlip();
#   test:  Resize(224, BICUBIC) of the shorter edge, then CenterCrop(224);
# CLIP's normalisation is the model's data_preprocessor (to_rgb=True, as
# mmcv's loader returns BGR). The test pipeline gives pixel-identical images
# to the original's (tests/test_datasets/test_pipelines.py checks it against
# torchvision): the pillow decoder without EXIF rotation (PIL's open ignores
# it too), ResizeEdge's truncated long edge and CenterCrop's rounded offsets
# are torchvision's. The one known difference is an 'LA' (grey + alpha)
# image, which mmcv composites on a grey canvas while PIL's convert('RGB')
# drops the alpha. The train pipeline draws crops with torchvision's
# algorithm (10 attempts, then a central crop), from numpy's generator.
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
# Tip-Adapter's training augmentation (its main.py and LP++'s, which copies
# its data code): RandomResizedCrop(224, scale=(0.5, 1), BICUBIC), then
# RandomHorizontalFlip(p=0.5); the train pipeline above with the original's
# smallest crop of half the image instead of 8 %.
tip_train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        color_type='color_ignore_orientation'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.5, 1.0),
        aspect_ratio_range=(3. / 4., 4. / 3.),
        max_attempts=10,
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
