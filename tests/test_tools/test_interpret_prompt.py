# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/analysis_tools/interpret_prompt.py: nearest words of a prompt."""
import re

import open_clip
import pytest
import torch
from open_clip.tokenizer import SimpleTokenizer
from tools_testing import CONFIG_TEMPLATE, load_tool, run_tool

PROMPT = 'a photo of a'


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/interpret_prompt.py')


@pytest.fixture(scope='module')
def clip_weights(tmp_path_factory):
    """Weights of the tiny CLIP in open_clip's format, and its vocabulary
    embedding."""
    import mmprompt  # noqa: F401  (the tiny archs)
    torch.manual_seed(0)
    model = open_clip.create_model('mmprompt-tiny-vit', pretrained=None)
    path = tmp_path_factory.mktemp('clip') / 'tiny_vit_open_clip.pt'
    torch.save(model.state_dict(), str(path))
    return path, model.token_embedding.weight.detach().clone()


def test_words_of_a_word_initialised_prompt(tool, clip_weights):
    _, table = clip_weights
    tokenizer = SimpleTokenizer()
    ctx = table[tokenizer.encode(PROMPT)]  # (4, W)
    words = tool.interpret_prompt(ctx, table, tokenizer, topk=3)
    assert list(words) == ['']
    assert len(words['']) == 4
    for vector, expected in zip(words[''], PROMPT.split()):
        assert len(vector) == 3
        assert vector[0] == (expected, pytest.approx(0, abs=1e-4))
        assert vector[1][1] > 0 and vector[1][1] <= vector[2][1]

    # class-specific contexts: one block per class
    csc = torch.stack([ctx, ctx.flip(0)])  # (2, 4, W)
    words = tool.interpret_prompt(csc, table, tokenizer, 1, ['cat', 'dog'])
    assert [v[0][0] for v in words['cat']] == ['a', 'photo', 'of', 'a']
    assert [v[0][0] for v in words['dog']] == ['a', 'of', 'photo', 'a']
    words = tool.interpret_prompt(csc, table, tokenizer, 1)
    assert list(words) == ['class 0', 'class 1']

    with pytest.raises(ValueError, match='width 8'):
        tool.interpret_prompt(torch.zeros(4, 8), table, tokenizer, 1)


def test_decode_token(tool):
    tokenizer = SimpleTokenizer()
    ids = tokenizer.encode('café photo,')
    assert [tool.decode_token(tokenizer, i)
            for i in ids] == ['café', 'photo', ',']


def test_read_context(tool):
    ctx = torch.randn(4, 8, dtype=torch.float16)
    for checkpoint in ({
            'state_dict': {
                'head.prompt_learner.ctx': ctx
            }
    }, {
            'state_dict': {
                'ctx': ctx,
                'token_prefix': ctx
            },
            'epoch': 5
    }, {
            'module.ctx': ctx
    }):
        found, names = tool.read_context(checkpoint)
        assert found.dtype == torch.float32 and torch.equal(found, ctx.float())
        assert names is None
    _, names = tool.read_context({
        'state_dict': {
            'head.prompt_learner.ctx': torch.zeros(2, 4, 8),
            'head.prompt_learner._extra_state': {
                'csc_class_names': ['cat', 'dog']
            }
        }
    })
    assert names == ['cat', 'dog']
    # what tools/train.py writes today: the names as UTF-8 JSON bytes
    names_bytes = torch.tensor(list(b'["cat", "sea lion"]'), dtype=torch.uint8)
    _, names = tool.read_context({
        'state_dict': {
            'head.prompt_learner.ctx': torch.zeros(2, 4, 8),
            'head.prompt_learner._extra_state': names_bytes
        }
    })
    assert names == ['cat', 'sea lion']
    with pytest.raises(ValueError, match="'head.prompt_learner.ctx'"):
        tool.read_context({'state_dict': {'head.fc.weight': ctx}})


def test_cli(clip_weights, tmp_path):
    weights, table = clip_weights
    config = tmp_path / 'coop_tiny.py'
    config.write_text(
        CONFIG_TEMPLATE.format(
            data_root=str(tmp_path)).replace('pretrained=None',
                                             f'pretrained={str(weights)!r}'))
    ctx = table[SimpleTokenizer().encode(PROMPT)]
    checkpoint = tmp_path / 'model.pth.tar-10'  # the original's format
    torch.save({'state_dict': {'ctx': ctx}, 'epoch': 10}, str(checkpoint))

    out = run_tool([
        'analysis_tools/interpret_prompt.py',
        str(config),
        str(checkpoint), '--topk', '3'
    ],
                   cwd=tmp_path).stdout
    lines = re.findall(r'^ctx (\d+): (.*)$', out, flags=re.M)
    assert [int(m) for m, _ in lines] == [1, 2, 3, 4], out
    for (_, pairs), expected in zip(lines, PROMPT.split()):
        pairs = [p.rsplit(' ', 1) for p in pairs.split(' | ')]
        assert len(pairs) == 3
        assert pairs[0] == [expected, '0.0000']
        assert all(re.fullmatch(r'\d+\.\d{4}', d) for _, d in pairs)
