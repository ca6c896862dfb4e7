# The original's optimisation (Dassl): SGD lr 0.002, momentum 0.9, weight
# decay 5e-4 on every learned tensor (ctx and meta_net biases included);
# epoch 0 at a constant 1e-5, then cosine over T_max=200 epochs, stepped
# once per epoch. Train batch 32 (set in the dataset's train_dataloader).
optim_wrapper = dict(
    optimizer=dict(
        type='SGD',
        lr=0.002,
        momentum=0.9,
        weight_decay=5e-4,
        dampening=0,
        nesterov=False))
param_scheduler = dict(
    type='ConstantWarmupCosineLR',
    T_max=200,
    warmup_lr=1e-5,
    warmup_epochs=1,
    by_epoch=True)

# Validate (few-shot val set) once, after the last epoch; the original
# tests the last-epoch model on the test split: run tools/test.py.
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=200)
val_cfg = dict()
test_cfg = dict()

# The batch size the learning rate is set for (--auto-scale-lr).
auto_scale_lr = dict(base_batch_size=32)
