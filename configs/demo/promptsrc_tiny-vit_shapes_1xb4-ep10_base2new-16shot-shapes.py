# The embedded demo with PromptSRC (`python demo/base2new_demo.py --method
# promptsrc`): the CoCoOp demo's data, tiny CLIP, pipelines, batch 4 and 10
# epochs, with PromptSRC's prompts (IVLP, 4 + 4 tokens, depth 2: every block
# of the tiny CLIP's 2-block towers), its regularisers (λ 25 / 10, the 60
# templates), its learning rate (0.0025) and its prompt aggregation, the
# Gaussian's mean at three quarters of the epochs as the original's 15 of
# 20.
_base_ = './cocoop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py'

model = dict(
    head=dict(
        _delete_=True,
        type='PromptSRCHead',
        prompt_learner=dict(
            type='IVLPPromptLearner',
            n_ctx=4,
            ctx_init='a photo of a',
            text_depth=2,
            n_vision_ctx=4,
            vision_depth=2),
        text_loss_weight=25.0,
        image_loss_weight=10.0,
        templates='imagenet-60'))
optim_wrapper = dict(optimizer=dict(lr=0.0025))
custom_hooks = [
    dict(type='ClassNamesHook'),
    dict(type='GaussianPromptAggregationHook', mean=7.5, std=1),
]
