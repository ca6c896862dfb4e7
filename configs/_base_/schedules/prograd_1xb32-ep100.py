# ProGrad's optimisation (rn50_ep100, Dassl's defaults): SGD lr 0.002,
# momentum 0.9, weight decay 5e-4, stepped on the projected gradient
# (ProGradOptimWrapper, λ = LOSS.LAMBDA 1.0; tools/train.py --amp selects
# ProGradAmpOptimWrapper); epoch 0 at a constant 1e-5, then cosine over
# T_max=100 epochs, stepped once per epoch. Train batch 32 (set in the
# dataset's train_dataloader).
optim_wrapper = dict(
    type='ProGradOptimWrapper',
    lambda_=1.0,
    optimizer=dict(
        type='SGD',
        lr=0.002,
        momentum=0.9,
        weight_decay=5e-4,
        dampening=0,
        nesterov=False))
param_scheduler = dict(
    type='ConstantWarmupCosineLR',
    T_max=100,
    warmup_lr=1e-5,
    warmup_epochs=1,
    by_epoch=True)

# Validate (few-shot val set) once, after the last epoch; the original
# tests the last-epoch model on the test split (--load-epoch 100): run
# tools/test.py.
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=100)
val_cfg = dict()
test_cfg = dict()

# The batch size the learning rate is set for (--auto-scale-lr).
auto_scale_lr = dict(base_batch_size=32)
