# Tip-Adapter-F: Tip-Adapter whose cache keys are trained (cross-entropy of
# the Tip-Adapter logits at the initial alpha, beta; the values and the
# zero-shot weights frozen), then alpha and beta searched on the validation
# features. The keys are fp32 under exact AdamW by default; the original's
# fp16 keys (its fp16 CLIP on CUDA) are model.adapter.precision='fp16',
# where AdamW's weight decay rounds away and its second moment underflows
# (configs/tip_adapter/README.md).
_base_ = './tip_adapter.py'

model = dict(adapter=dict(finetune=True))
