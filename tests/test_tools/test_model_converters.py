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
