# The demo's CoOp variant: the same data and schedule as the CoCoOp demo, with
# CoOp's prompt learner (one context shared by all images).
_base_ = ['./cocoop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py']

model = dict(
    head=dict(
        _delete_=True,
        type='CoOpHead',
        prompt_learner=dict(
            type='CoOpPromptLearner', n_ctx=4, ctx_init='a photo of a')))
