# Copyright (c) mmprompt contributors. All rights reserved.
"""Write the checkpoints of ``tests/data/legacy_checkpoints``.

Run once, on mmprompt's main at commit b922ef0 (before the core redesign),
from the repository root::

    python tests/data/legacy_checkpoints/make_fixture.py

For each model (CoCoOp with word init, CoOp with class-specific contexts
and the class in the middle) it trains one epoch with ``tools/train.py`` on
a generated 3-class image set and a random tiny CLIP (``random_tiny_clip``,
seed 0), keeps the checkpoint that run writes, and stores the logits that
code computes for fixed images. ``tests/test_utils/test_legacy_checkpoints``
checks that today's code loads these files and gives the same logits.
"""
import os.path as osp
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def _tools_testing():
    """The tools' test helpers (a tiny image tree and config template)."""
    sys.path.insert(0, str(ROOT / 'tests' / 'test_tools'))
    import tools_testing
    return tools_testing


HEADS = {
    'cocoop':
    "dict(type='CoCoOpHead', prompt_learner=dict("
    "type='CoCoOpPromptLearner', ctx_init='a photo of a'))",
    'coop_csc_middle':
    "dict(type='CoOpHead', prompt_learner=dict("
    "type='CoOpPromptLearner', n_ctx=4, csc=True, num_classes=3, "
    "class_token_position='middle'))",
}
CLASSES = ['cat', 'dog', 'sea_lion']


def fixed_images() -> torch.Tensor:
    return torch.rand(
        4, 3, 32, 32, generator=torch.Generator().manual_seed(123))


def config_text(data_root: str, clip_file: str, head: str) -> str:
    text = _tools_testing().CONFIG_TEMPLATE.format(data_root=data_root)
    text = text.replace('pretrained=None', f'pretrained={clip_file!r}')
    start = text.index('    head=dict(')
    end = text.index('\n\npipeline')
    return text[:start] + f'    head={head})' + text[end:]


def main() -> None:
    from mmengine.config import Config

    from mmprompt.registry import MODELS
    from mmprompt.testing import random_tiny_clip, save_open_clip_weights
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = _tools_testing().make_image_tree(tmp / 'data')
        clip_file = str(tmp / 'tiny_clip.pt')
        save_open_clip_weights(
            random_tiny_clip('mmprompt-tiny-vit', 0), clip_file)
        logits = {}
        for name, head in HEADS.items():
            config = tmp / f'{name}.py'
            config.write_text(config_text(str(data), clip_file, head))
            work_dir = tmp / name
            subprocess.run([
                sys.executable,
                str(ROOT / 'tools' / 'train.py'),
                str(config), '--work-dir',
                str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
                'default_hooks.checkpoint.type=SafeCheckpointHook'
            ],
                           check=True,
                           cwd=tmp)
            checkpoint = work_dir / 'epoch_1.pth'
            target = HERE / f'{name}_epoch_1.pth'
            target.write_bytes(checkpoint.read_bytes())
            cfg = Config.fromfile(str(config))
            model = MODELS.build(cfg.model)
            state = torch.load(str(checkpoint), weights_only=True)
            model.load_state_dict(state['state_dict'], strict=False)
            model.set_class_names(CLASSES)
            model.eval()
            with torch.no_grad():
                logits[name] = model(fixed_images())
        torch.save(
            dict(
                logits=logits,
                classes=CLASSES,
                clip_checksum=float(
                    random_tiny_clip('mmprompt-tiny-vit',
                                     0).token_embedding.weight.sum())),
            HERE / 'expected.pt')
    print('written to', osp.relpath(HERE, ROOT))


if __name__ == '__main__':
    main()
