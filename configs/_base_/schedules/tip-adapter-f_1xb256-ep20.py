# Tip-Adapter-F's training (main.py run_tip_adapter_F): AdamW lr 0.001,
# eps 1e-4, weight decay 0.01 (torch's default, which the original keeps),
# cosine from the lr to 0 over epochs x iterations, stepped every
# iteration, no warm-up; batch 256 of cached training features (epoch e
# reads augmented view e % 10), drop_last False. After the last epoch
# AdapterTrainLoop searches alpha and beta on the validation features
# (search_split='val'; the original keeps the epoch with the best TEST
# accuracy, mmprompt the last epoch: configs/tip_adapter/README.md).
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=0.001, eps=1e-4, weight_decay=0.01))
param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=20,
    eta_min=0.,
    by_epoch=True,
    convert_to_iter_based=True)
train_cfg = dict(
    type='AdapterTrainLoop', max_epochs=20, search_split='val',
    val_interval=20)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
