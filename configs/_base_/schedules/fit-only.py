# Methods fitted on cached features, not trained by the runner (the linear
# probe, LP++): AdapterTrainLoop extracts the features once
# (FeatureCacheHook: {work_dir}/feature_cache, or a shared cache_dir), fits
# the adapter (its search on the val split's features) before one epoch
# without iterations, and saves epoch_1.pth (what was fitted). What chose
# what is logged and written to {work_dir}/adapter_choices.json. The
# optimizer is never stepped. Configs add FeatureCacheHook to custom_hooks.
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.0))
train_cfg = dict(
    type='AdapterTrainLoop', max_epochs=0, search_split='val', val_interval=1)
val_cfg = dict()
test_cfg = dict()
