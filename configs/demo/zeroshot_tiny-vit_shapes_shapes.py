# The embedded demo's zero-shot CLIP: the demo's tiny CLIP with the
# hand-written template 'a photo of a {}.', tested as it is (nothing is
# trained). The zero-shot line of the demo's few-shot curves:
#   python tools/run_sweep.py fewshot --demo --method zeroshot ...
_base_ = ['./coop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py']

model = dict(
    head=dict(
        _delete_=True, type='ZeroShotHead', templates='a photo of a {}.'))
test_dataloader = dict(dataset=dict(subsample_classes='all'))

# Test only: nothing is trained.
train_dataloader = None
train_cfg = None
optim_wrapper = None
param_scheduler = None
