# The embedded demo with MaPLe (`python demo/base2new_demo.py --method
# maple`): the CoCoOp demo's data, tiny CLIP, pipelines, batch 4 and 10
# epochs, with MaPLe's prompt (2 tokens from 'a photo of a', coupled vision
# prompts, depth 2: every block of the tiny CLIP's 2-block towers) and its
# learning rate (0.0035).
_base_ = './cocoop_tiny-vit_shapes_1xb4-ep10_base2new-16shot-shapes.py'

model = dict(
    head=dict(
        _delete_=True,
        type='DeepPromptHead',
        prompt_learner=dict(
            type='MaPLePromptLearner',
            n_ctx=2,
            ctx_init='a photo of a',
            depth=2)))
optim_wrapper = dict(optimizer=dict(lr=0.0035))
