_base_ = './coop_resnet50_clip-openai_1xb32-ep50_16shot-imagenet.py'

model = dict(head=dict(prompt_learner=dict(n_ctx=4)))
