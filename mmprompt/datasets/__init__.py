# Copyright (c) mmprompt contributors. All rights reserved.
from .base_dataset import CoOpDataset, SplitJsonDataset
from .coop_datasets import (SUN397, UCF101, Caltech101, DescribableTextures,
                            EuroSAT, FGVCAircraft, Food101, OxfordFlowers,
                            OxfordPets, StanfordCars)
from .feature_dataset import CachedFeatureDataset
from .imagenet import (ImageNet, ImageNetA, ImageNetR, ImageNetSketch,
                       ImageNetV2)
from .samplers import (DefaultSampler, SampleIndex, sample_seed,
                       seeded_generators)
from .transforms import ImageReadError, ImageTooLargeError, LoadImageFromFile
from .utils import (DataItem, few_shot_splits, read_and_split_data,
                    read_split_file, sample_few_shot, split_trainval,
                    subsample_classes, write_split_file)

__all__ = [
    'CoOpDataset', 'SplitJsonDataset', 'Caltech101', 'DescribableTextures',
    'EuroSAT', 'FGVCAircraft', 'Food101', 'OxfordFlowers', 'OxfordPets',
    'StanfordCars', 'SUN397', 'UCF101', 'ImageNet', 'ImageNetA', 'ImageNetR',
    'ImageNetSketch', 'ImageNetV2', 'ImageReadError', 'ImageTooLargeError',
    'LoadImageFromFile', 'DataItem', 'few_shot_splits', 'read_and_split_data',
    'read_split_file', 'sample_few_shot', 'split_trainval',
    'subsample_classes', 'write_split_file', 'DefaultSampler', 'SampleIndex',
    'sample_seed', 'seeded_generators', 'CachedFeatureDataset'
]
