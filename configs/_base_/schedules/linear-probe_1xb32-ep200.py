# Linear probe: a linear head trained with AdamW and cosine decay on frozen
# CLIP features. Not the original's protocol (sklearn L-BFGS logistic
# regression with a search of C on the val set); untuned, see
# configs/linear_probe/README.md. Only the head has trainable parameters.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4))
param_scheduler = dict(
    type='CosineAnnealingLR', T_max=200, by_epoch=True, eta_min=0.)

train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=200)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=32)
