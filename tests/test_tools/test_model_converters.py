# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/model_converters/coop_to_mmprompt.py on the original's own files.
"""
import os
from pathlib import Path

import pytest
import torch
from tools_testing import GOLDEN, golden_dir, load_tool

from mmprompt.utils import UnsafeCheckpointError, load_checkpoint_file

PREFIX = 'head.prompt_learner.'
VARIANTS = sorted(
    f'{model}/{variant}' for model in ('tiny-vit', 'tiny-rn')
    for variant in (os.listdir(GOLDEN / model) if (GOLDEN /
                                                   model).is_dir() else ())
    if (GOLDEN / model / variant / 'model.pth.tar-10').is_file())


@pytest.fixture(scope='module')
def converter():
    return load_tool('model_converters/coop_to_mmprompt.py')


@pytest.mark.parametrize('variant', VARIANTS or ['missing'])
def test_round_trip_of_golden_checkpoints(converter, variant, tmp_path):
    src = golden_dir(*variant.split('/')) / 'model.pth.tar-10'
    dst = tmp_path / 'sub' / 'converted.pth'
    converter.convert(str(src), str(dst))

    original = torch.load(str(src), weights_only=True)['state_dict']
    converted = load_checkpoint_file(str(dst))
    state_dict = converted['state_dict']
    learned = {
        k
        for k in original if k not in ('token_prefix', 'token_suffix')
    }
    assert set(state_dict) == {PREFIX + k for k in learned}
    assert 'ctx' in learned
    assert ('meta_net.linear1.weight' in learned) == ('cocoop' in variant)
    for key in learned:
        assert torch.equal(state_dict[PREFIX + key], original[key]), key
    meta = converted['meta']
    assert meta['epoch'] == 10
    assert Path(meta['converted_from']).resolve() == src.resolve()
    assert meta['dropped_keys'] == ['token_prefix', 'token_suffix']
    assert [p.name for p in dst.parent.iterdir()] == ['converted.pth']


def test_refuses_to_overwrite(converter, tmp_path):
    src = golden_dir('tiny-vit', 'coop_csc_random4') / 'model.pth.tar-10'
    dst = tmp_path / 'converted.pth'
    dst.write_bytes(b'precious')
    with pytest.raises(SystemExit, match='exists; pass --force'):
        converter.main([str(src), str(dst)])
    assert dst.read_bytes() == b'precious'
    converter.main([str(src), str(dst), '--force'])
    ctx = load_checkpoint_file(str(dst))['state_dict'][PREFIX + 'ctx']
    assert ctx.dim() == 3  # class-specific
    assert sorted(p.name for p in tmp_path.iterdir()) == ['converted.pth']


def test_refuses_bad_sources(converter, tmp_path):
    with pytest.raises(SystemExit, match='no such file'):
        converter.main([str(tmp_path / 'missing'), str(tmp_path / 'x.pth')])

    mmprompt_ckpt = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {
        PREFIX + 'ctx': torch.zeros(4, 8)
    }}, str(mmprompt_ckpt))
    with pytest.raises(SystemExit, match='already an mmprompt checkpoint'):
        converter.main([str(mmprompt_ckpt), str(tmp_path / 'x.pth')])

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {tmp_path / "code_ran"}', ))

    evil = tmp_path / 'model.pth.tar-10'
    torch.save({'state_dict': {'ctx': Payload()}}, str(evil))
    with pytest.raises(UnsafeCheckpointError):
        converter.convert(str(evil), str(tmp_path / 'x.pth'))
    assert not (tmp_path / 'code_ran').exists()
    assert not (tmp_path / 'x.pth').exists()


def test_unreadable_sources_and_destinations_are_named(converter, tmp_path):
    """A text file (torch: ``IndexError: pop from empty list``), a
    truncated file (``OSError: [Errno 22]``) and a folder as DST give one
    line naming the file, no traceback."""
    text = tmp_path / 'last_checkpoint'
    text.write_text('epoch_1.pth')
    with pytest.raises(SystemExit) as err:
        converter.main([str(text), str(tmp_path / 'x.pth')])
    assert 'last_checkpoint' in str(err.value)
    assert 'is a text file, not a checkpoint' in str(err.value)

    src = golden_dir('tiny-vit', 'coop_csc_random4') / 'model.pth.tar-10'
    data = src.read_bytes()
    cut = tmp_path / 'model.pth.tar-10'
    cut.write_bytes(data[:len(data) * 3 // 4])
    with pytest.raises(SystemExit, match='model.pth.tar-10.*truncated'):
        converter.main([str(cut), str(tmp_path / 'x.pth')])

    folder = tmp_path / 'out'
    folder.mkdir()
    with pytest.raises(SystemExit, match=r'out.* is a folder'):
        converter.main([str(src), str(folder), '--force'])
    assert not (tmp_path / 'x.pth').exists() and not list(folder.iterdir())


KGCOOP_VARIANTS = sorted(f'{model}/{variant}'
                         for model in ('tiny-vit', 'tiny-rn')
                         for variant in ('kgcoop_word-init_w8',
                                         'kgcoop_random8_w2',
                                         'kgcoop_csc4_w1'))


@pytest.mark.parametrize('variant', KGCOOP_VARIANTS)
def test_kgcoop_checkpoints_convert_and_give_the_originals_logits(
        converter, variant, tmp_path):
    """KgCoOp's file holds a pickled scheduler (read as data), the dead
    bias_vectors and fp16 meta_net (dropped) and ctx: the converted file
    gives the original's logits."""
    import json

    from mmprompt.registry import MODELS
    model_dir, name = variant.split('/')
    src = golden_dir('kgcoop', model_dir, name) / 'model.pth.tar-10'
    dst = tmp_path / 'kgcoop.pth'
    converter.main([str(src), str(dst)])
    converted = load_checkpoint_file(str(dst))
    assert list(converted['state_dict']) == [PREFIX + 'ctx']
    meta = converted['meta']
    assert meta['source'] == 'original KgCoOp prompt learner (htyao89/KgCoOp)'
    assert meta['dropped_keys'] == [
        'bias_vectors', 'meta_net.linear1.bias', 'meta_net.linear1.weight',
        'token_prefix', 'token_suffix'
    ]
    spec = json.loads((src.parent / 'options.json').read_text())
    options = spec['options']
    inputs = torch.load(golden_dir(model_dir) / 'inputs.pt', weights_only=True)
    learner = dict(type='CoOpPromptLearner')
    learner.update(
        dict(ctx_init='a photo of a') if options['ctx_init'] else dict(
            n_ctx=options['n_ctx']))
    if options['csc']:
        learner.update(csc=True, num_classes=len(inputs['classnames']))
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP',
                arch=f'mmprompt-{model_dir}',
                pretrained=str(golden_dir(model_dir) /
                               'openai_state_dict.pt')),
            head=dict(
                type='KgCoOpHead',
                prompt_learner=learner,
                templates=spec['dataset'],
                kg_weight=options['w']),
            class_names=inputs['classnames']))
    model.load_state_dict(converted['state_dict'], strict=False)
    model.eval()
    with torch.no_grad():
        logits = model(inputs['images'])
    expected = torch.load(src.parent / 'logits.pt', weights_only=True)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_refuses_what_no_original_wrote(converter, tmp_path):
    src = tmp_path / 'weights.pth'
    torch.save({'state_dict': {'weight': torch.zeros(2)}}, str(src))
    with pytest.raises(
            SystemExit,
            match=r"not a checkpoint of an original prompt learner "
            r"\(CoOp/CoCoOp, KgCoOp, ProGrad, MaPLe, IVLP, deep language "
            r"prompting, VPT-deep, PromptSRC\).*found \[.weight.\]"):
        converter.main([str(src), str(tmp_path / 'x.pth')])


PROGRAD_VARIANTS = sorted(f'{arch}/{variant}' for arch in ('vit', 'rn')
                          for variant in ('prograd_template-init16',
                                          'prograd_random8_front_l0.8_T2',
                                          'prograd_csc4'))


@pytest.mark.parametrize('variant', PROGRAD_VARIANTS)
def test_prograd_checkpoints_convert_and_give_the_originals_logits(
        converter, variant, tmp_path):
    """ProGrad's file (CoOp's state dict, the optimizer and a pickled
    scheduler of its forked Dassl) converts to ctx alone; the converted
    file in ProGradHead gives the original's logits."""
    from prograd_golden import Golden, assert_rel
    arch, name = variant.split('/')
    golden = Golden(golden_dir(), arch, name)
    src = golden.root / 'model.pth.tar-10'
    dst = tmp_path / 'prograd.pth'
    converter.main([str(src), str(dst)])
    converted = load_checkpoint_file(str(dst))
    assert list(converted['state_dict']) == [PREFIX + 'ctx']
    meta = converted['meta']
    assert meta['source'] == ('original ProGrad prompt learner '
                              '(BeierZhu/Prompt-align)')
    assert meta['dropped_keys'] == ['token_prefix', 'token_suffix']
    assert meta['epoch'] == 10
    model = golden.model(load=False)
    model.load_state_dict(converted['state_dict'], strict=False)
    model.eval()
    with torch.no_grad():
        logits = model(golden.images)
    assert_rel(logits, golden.load('logits.pt'), 'logits')
