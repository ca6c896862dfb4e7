# The optimisation of MaPLe's and IVLP's base-to-new configs
# (vit_b16_c2_ep5_batch4_2ctx, IVLP/..._2+2ctx; Dassl's defaults otherwise):
# SGD lr 0.0035, momentum 0.9, weight decay 5e-4; epoch 0 at a constant
# 1e-5, then cosine over T_max=5 epochs, stepped once per epoch. Train batch
# 4 (set in the dataset's train_dataloader). Deep language prompting and
# VPT-deep: lr 0.0025. Cross-dataset and domain generalisation (MaPLe's
# ..._cross_datasets): lr 0.0026, 2 epochs (param_scheduler.T_max=2).
optim_wrapper = dict(
    optimizer=dict(
        type='SGD',
        lr=0.0035,
        momentum=0.9,
        weight_decay=5e-4,
        dampening=0,
        nesterov=False))
param_scheduler = dict(
    type='ConstantWarmupCosineLR',
    T_max=5,
    warmup_lr=1e-5,
    warmup_epochs=1,
    by_epoch=True)

# Validate (few-shot val set) once, after the last epoch; the original
# tests the last-epoch model on the test split (--load-epoch 5): run
# tools/test.py.
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=5)
val_cfg = dict()
test_cfg = dict()

# The batch size the learning rate is set for (--auto-scale-lr).
auto_scale_lr = dict(base_batch_size=4)
