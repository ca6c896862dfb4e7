_base_ = [
    '../_base_/models/linear_probe.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/linear-probe_1xb32-ep200.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=1000))

# The original extracts the features of train images with the test
# transform: no augmentation.
train_dataloader = dict(
    batch_size=32,
    drop_last=True,
    dataset=dict(num_shots=16, pipeline={{_base_.test_pipeline}}))
val_cfg = None  # ImageNet: no val split

# ImageClassifier has no set_class_names: the classes are fixed by
# num_classes, so no ClassNamesHook.
custom_hooks = []
