# PromptSRC's base-to-new optimisation (vit_b16_c2_ep20_batch4_4+4ctx;
# Dassl's defaults otherwise): SGD lr 0.0025, momentum 0.9, weight decay
# 5e-4; epoch 0 at a constant 1e-5, then cosine over T_max=20 epochs,
# stepped once per epoch. Train batch 4 (set in the dataset's
# train_dataloader). The prompts of the 20 epochs are averaged with
# Gaussian weights (mean epoch 15, std 1) after the last one by the
# GaussianPromptAggregationHook of each config's custom_hooks (not here:
# default_runtime.py, another base, sets custom_hooks too): the last
# checkpoint, its validation and the test hold the aggregate. Cross-dataset
# and domain generalisation: GPA mean 6, std 10 (and depth 3); few-shot: 50
# epochs, mean 30 std 30 or mean 45 std 5 (configs/promptsrc/README.md).
optim_wrapper = dict(
    optimizer=dict(
        type='SGD',
        lr=0.0025,
        momentum=0.9,
        weight_decay=5e-4,
        dampening=0,
        nesterov=False))
param_scheduler = dict(
    type='ConstantWarmupCosineLR',
    T_max=20,
    warmup_lr=1e-5,
    warmup_epochs=1,
    by_epoch=True)

# Validate (few-shot val set) once, after the last epoch (on the
# aggregate); the original tests the last-epoch model on the test split
# (--load-epoch 20): run tools/test.py.
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=20)
val_cfg = dict()
test_cfg = dict()

# The batch size the learning rate is set for (--auto-scale-lr).
auto_scale_lr = dict(base_batch_size=4)
