# Copyright (c) mmprompt contributors. All rights reserved.
import errno
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import Dataset

from mmprompt.registry import MODELS
from mmprompt.utils import (ATOMIC_BACKEND, AtomicLocalBackend,
                            CheckpointMismatchError, CheckpointWriteError,
                            CorruptCheckpointError, OpaqueObject,
                            UnsafeCheckpointError, atomic_write,
                            check_checkpoint_fits, checkpoint_filter_fn,
                            convert_coop_state_dict, existing_checkpoints,
                            find_last_valid_checkpoint, is_valid_checkpoint,
                            load_checkpoint_file, original_format,
                            read_pointer, remove_partial_writes, repoint,
                            strip_prefix)
from mmprompt.utils.checkpoint import (TRAINED_ON, check_trained_on,
                                       record_trained_on, weights_match)


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        return {'loss': out.square().mean()} if mode == 'loss' else out


class _Data(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((2, ), float(index)))


@pytest.fixture(scope='module')
def mmengine_checkpoint(tmp_path_factory):
    """A checkpoint written by a real mmengine Runner (message hub with
    HistoryBuffers and numpy values, optimizer and scheduler states)."""
    work_dir = tmp_path_factory.mktemp('runner')
    runner = Runner(
        model=_Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        default_scope='mmprompt')
    runner.train()
    return work_dir / 'epoch_1.pth'


def test_mmengine_checkpoint_loads_with_weights_only(mmengine_checkpoint):
    raw_error = None
    try:
        torch.load(mmengine_checkpoint, weights_only=True)
    except Exception as err:  # noqa: BLE001
        raw_error = err
    checkpoint = load_checkpoint_file(str(mmengine_checkpoint))
    assert set(checkpoint) >= {'meta', 'state_dict', 'message_hub'}
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert np.isfinite(buffer.mean())
    # mmprompt's allowlist is registered globally, so plain torch.load (as
    # mmengine's resume calls it) works as well.
    assert raw_error is None


def test_mmengine_load_checkpoint_goes_through_the_safe_loader(
        mmengine_checkpoint):
    model = _Toy()
    load_checkpoint(model, str(mmengine_checkpoint))
    saved = load_checkpoint_file(str(mmengine_checkpoint))['state_dict']
    torch.testing.assert_close(model.linear.weight, saved['linear.weight'])


class _RunsCode:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _RunsCode(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint_file(str(path))
    assert 'evil.pth' in str(err.value) and 'system' in str(err.value)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(_Toy(), str(path))
    assert not marker.exists()


def test_getattr_beyond_history_buffer_statistics_is_refused(tmp_path):

    class _Sneaky:

        def __reduce__(self):
            # getattr(HistoryBuffer, '__init__') is not a statistics method.
            return (getattr, (HistoryBuffer, '__init__'))

    path = tmp_path / 'sneaky.pth'
    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        load_checkpoint_file(str(path))


def test_truncated_checkpoint_is_reported_as_corrupt(mmengine_checkpoint,
                                                     tmp_path):
    data = mmengine_checkpoint.read_bytes()
    path = tmp_path / 'half.pth'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match='half.pth'):
        load_checkpoint_file(str(path))


def test_a_checkpoint_cut_anywhere_is_reported_as_corrupt(
        mmengine_checkpoint, tmp_path):
    """torch raises RuntimeError, EOFError or ``OSError: [Errno 22]
    Invalid argument`` (no file name) depending on where a file is cut."""
    data = mmengine_checkpoint.read_bytes()
    path = tmp_path / 'cut.pth'
    for size in range(0, len(data), max(1, len(data) // 40)):
        path.write_bytes(data[:size])
        with pytest.raises(CorruptCheckpointError, match='cut.pth') as err:
            load_checkpoint_file(str(path))
        assert 'truncated' in str(err.value), size


@pytest.mark.parametrize(
    'text', ['epoch_1.pth', 'work_dirs/a/epoch_1.pth\n', 'a,b\n1,2\n', '.'])
def test_a_text_file_is_reported_as_text(text, tmp_path):
    """e.g. ``last_checkpoint`` given instead of the file it names: torch
    raises ``IndexError: pop from empty list`` or ``KeyError``."""
    path = tmp_path / 'last_checkpoint'
    path.write_text(text)
    with pytest.raises(CorruptCheckpointError) as err:
        load_checkpoint_file(str(path))
    message = str(err.value)
    assert 'last_checkpoint' in message and 'a text file' in message
    assert repr(text.splitlines()[0][:40]) in message
    assert 'IndexError' not in message and 'pop from' not in message


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint(_Toy(), str(tmp_path / 'missing.pth'))


def test_a_pickled_torch_optimizer_and_scheduler_are_read_as_data(tmp_path):
    """What the forked Dassl of KgCoOp and ProGrad pickles into a
    checkpoint (the warm-up scheduler's successor, a CosineAnnealingLR
    holding the SGD whose state is a defaultdict) loads with weights_only,
    as inert records: no torch class is constructed or called."""
    param = nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    param.grad = torch.ones(2)
    optimizer.step()  # a momentum buffer in its (default)dict state
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 4)
    path = tmp_path / 'model.pth.tar-10'
    checkpoint = dict(
        state_dict=dict(ctx=param.detach()),
        scheduler=dict(successor=scheduler))
    torch.save(checkpoint, path)
    loaded = load_checkpoint_file(str(path))
    successor = loaded['scheduler']['successor']
    assert isinstance(successor, OpaqueObject)
    assert not isinstance(successor, torch.optim.lr_scheduler.LRScheduler)
    assert successor.name == 'torch.optim.lr_scheduler.CosineAnnealingLR'
    assert successor.state['T_max'] == 4
    sgd = successor.state['optimizer']
    assert sgd.name == 'torch.optim.sgd.SGD' and type(sgd.state) is dict
    buffer, = sgd.state['state'].values()  # keyed by the parameter
    torch.testing.assert_close(buffer['momentum_buffer'], torch.ones(2))
    torch.testing.assert_close(loaded['state_dict']['ctx'], param.detach())
    # The stand-ins are allowed while mmprompt reads a file, not after.
    with pytest.raises(Exception, match='CosineAnnealingLR'):
        torch.load(str(path), weights_only=True)


def test_a_stand_in_cannot_be_called_with_arguments(tmp_path):

    class _Calls:

        def __reduce__(self):
            return (torch.optim.SGD, ([torch.ones(1)], 0.1))

    path = tmp_path / 'calls.pth'
    torch.save({'x': _Calls()}, path)
    with pytest.raises((CorruptCheckpointError, UnsafeCheckpointError)):
        load_checkpoint_file(str(path))


# ---------------------------------------------------------------------------
# Key conversion
# ---------------------------------------------------------------------------
PREFIX = 'head.prompt_learner.'


def test_strip_prefix():
    state = {'module.a': 1, 'b': 2, 'module.module.c': 3}
    assert strip_prefix(state) == {'a': 1, 'b': 2, 'module.c': 3}
    assert list(strip_prefix(state)) == ['a', 'b', 'module.c']
    assert strip_prefix({'x.a': 1}, prefix='x.') == {'a': 1}


@pytest.mark.parametrize('variant', ['coop_end_word-init', 'cocoop_word-init'])
def test_filter_converts_the_originals_checkpoints(golden_dir, variant):
    tower = 'tiny-vit' if variant.startswith('coop') else 'tiny-rn'
    path = golden_dir / tower / variant / 'model.pth.tar-10'
    if not path.is_file():
        pytest.skip(f'{path} not in the golden outputs')
    original = torch.load(str(path), weights_only=True)
    assert original_format(original) == 'CoOp/CoCoOp'
    learned = {
        k: v
        for k, v in original['state_dict'].items()
        if k not in ('token_prefix', 'token_suffix')
    }
    expected = {PREFIX + k for k in learned}
    for given in (original, original['state_dict']):
        converted = checkpoint_filter_fn(given)
        assert set(converted) == expected
        for key, value in learned.items():
            assert converted[PREFIX + key] is value
    assert ('meta_net.linear1.weight'
            in learned) == variant.startswith('cocoop')
    # As saved from a DDP-wrapped learner.
    wrapped = {f'module.{k}': v for k, v in original['state_dict'].items()}
    assert set(checkpoint_filter_fn(wrapped)) == expected
    assert set(convert_coop_state_dict(original)) == expected


def test_prograd_files_are_told_apart_and_converted_as_coops(golden_dir):
    """ProGrad saves CoOp's state dict; its forked Dassl's file (optimizer
    and scheduler, no val_result) names it, and both convert alike."""
    path = (
        golden_dir / 'prograd' / 'tiny-vit' / 'prograd_template-init16' /
        'model.pth.tar-10')
    if not path.is_file():
        pytest.skip(f'{path} not in the golden outputs')
    original = load_checkpoint_file(str(path))
    assert original_format(original) == 'ProGrad'
    assert original_format(original['state_dict']) == 'CoOp/CoCoOp'
    upstream = dict(original, val_result=0.5)  # upstream Dassl's (CoOp's)
    assert original_format(upstream) == 'CoOp/CoCoOp'
    for given in (original, original['state_dict'], upstream):
        converted = checkpoint_filter_fn(given)
        assert list(converted) == [PREFIX + 'ctx']
        assert converted[PREFIX + 'ctx'] is original['state_dict']['ctx']
    assert list(convert_coop_state_dict(original)) == [PREFIX + 'ctx']


def test_filter_passes_mmprompt_checkpoints_through():
    ctx = torch.zeros(4, 8)
    state = {PREFIX + 'ctx': ctx, PREFIX + '_extra_state': torch.zeros(2)}
    assert original_format(state) is None
    assert checkpoint_filter_fn({'state_dict': state}) == state
    assert checkpoint_filter_fn({'module.' + PREFIX + 'ctx': ctx}) == {
        PREFIX + 'ctx': ctx
    }


def test_filter_places_the_originals_tensors_under_the_models_learner():

    class Learner(nn.Module):

        def __init__(self):
            super().__init__()
            self.ctx = nn.Parameter(torch.zeros(2, 8))

    class Model(nn.Module):

        def __init__(self):
            super().__init__()
            self.decoder = nn.Module()
            self.decoder.prompt_learner = Learner()

    converted = checkpoint_filter_fn({'ctx': torch.ones(2, 8)}, Model())
    assert list(converted) == ['decoder.prompt_learner.ctx']


def test_filter_refuses_unknown_keys_of_an_original():
    with pytest.raises(
            ValueError,
            match=r"unexpected key 'prompt_bias'.*"
            r"known keys are \['ctx'"):
        checkpoint_filter_fn({'ctx': torch.zeros(1), 'prompt_bias': 1})
    with pytest.raises(TypeError, match='got list'):
        checkpoint_filter_fn([1, 2])


def test_converter_refuses_what_is_not_an_original():
    with pytest.raises(ValueError, match="expected a 'state_dict' with 'ctx'"):
        convert_coop_state_dict({'state_dict': {'weight': torch.ones(1)}})


# ---------------------------------------------------------------------------
# The fits-this-model check
# ---------------------------------------------------------------------------
def test_check_checkpoint_fits():
    model = nn.Sequential(nn.Linear(2, 3))
    check_checkpoint_fits(model, model.state_dict(), 'same.pth')
    check_checkpoint_fits(model, {
        f'module.{k}': v
        for k, v in model.state_dict().items()
    }, 'ddp.pth')
    with pytest.raises(
            CheckpointMismatchError,
            match=r"'part.pth' does not hold \['0.bias'\]"):
        check_checkpoint_fits(model, {'0.weight': torch.zeros(3, 2)},
                              'part.pth')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'0.weight: \(4, 2\) in the checkpoint, \(3, 2\) in the '
            r'model; 0.bias: \(4,\) in the checkpoint, \(3,\)'):
        check_checkpoint_fits(model,
                              nn.Sequential(nn.Linear(2, 4)).state_dict(),
                              'other.pth')


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------
def test_find_last_valid_checkpoint(tmp_path):

    def save(name, epoch):
        path = tmp_path / name
        torch.save(
            dict(
                meta=dict(epoch=epoch, iter=3 * epoch),
                state_dict=dict(w=torch.ones(1))), path)
        return str(path)

    assert find_last_valid_checkpoint(str(tmp_path)) is None
    first, second = save('epoch_1.pth', 1), save('epoch_2.pth', 2)
    # No pointer (killed between the checkpoint and the pointer): newest.
    assert find_last_valid_checkpoint(str(tmp_path)) == second
    (tmp_path / 'last_checkpoint').write_text(first)
    assert find_last_valid_checkpoint(str(tmp_path)) == first
    assert read_pointer(str(tmp_path)) == first
    # A pointer torn by a kill while it was written: the newest that reads.
    (tmp_path / 'last_checkpoint').write_text(second[:len(second) // 2])
    assert find_last_valid_checkpoint(str(tmp_path)) == second
    (tmp_path / 'last_checkpoint').write_text('')
    assert read_pointer(str(tmp_path)) is None
    assert find_last_valid_checkpoint(str(tmp_path)) == second
    (tmp_path / 'last_checkpoint').write_text(second)
    (tmp_path / 'epoch_2.pth').write_bytes(b'PK\x03\x04 truncated')
    assert not is_valid_checkpoint(second)
    assert find_last_valid_checkpoint(str(tmp_path)) == first
    (tmp_path / 'epoch_1.pth').unlink()
    assert find_last_valid_checkpoint(str(tmp_path)) is None
    assert existing_checkpoints(
        str(tmp_path)) == ['last_checkpoint', 'epoch_2.pth']


def _save(folder, epoch, value=1.0):
    path = folder / f'epoch_{epoch}.pth'
    torch.save(
        dict(
            meta=dict(epoch=epoch, iter=3 * epoch),
            state_dict=dict(w=torch.full((1, ), value))), path)
    return str(path)


def test_a_copied_work_dir_resumes_from_its_own_checkpoint(tmp_path):
    """The pointer holds an absolute path: a copy of the work dir resumed
    from the old folder's checkpoint while that one still existed."""
    import shutil
    old = tmp_path / 'old'
    old.mkdir()
    _save(old, 1)
    (old / 'last_checkpoint').write_text(_save(old, 2))
    new = tmp_path / 'new'
    shutil.copytree(old, new)
    mine = str(new / 'epoch_2.pth')
    assert read_pointer(str(new)) == mine
    assert read_pointer(str(new), resolve=False) == str(old / 'epoch_2.pth')
    assert find_last_valid_checkpoint(str(new)) == mine
    assert find_last_valid_checkpoint(str(old)) == str(old / 'epoch_2.pth')
    # A relative pointer is read in its own folder.
    (new / 'last_checkpoint').write_text('epoch_1.pth')
    assert read_pointer(str(new)) == str(new / 'epoch_1.pth')
    assert find_last_valid_checkpoint(str(new)) == str(new / 'epoch_1.pth')
    # A pointer into CheckpointHook's out_dir (another folder, on purpose)
    # is kept when the work dir has no file of that name.
    out_dir = tmp_path / 'out' / 'new'
    out_dir.mkdir(parents=True)
    (new / 'last_checkpoint').write_text(_save(out_dir, 3))
    assert read_pointer(str(new)) == str(out_dir / 'epoch_3.pth')
    # repoint() rewrites the pointer of a copied work dir, once.
    (new / 'last_checkpoint').write_text(str(old / 'epoch_2.pth'))
    assert repoint(str(new)) == mine
    assert (new / 'last_checkpoint').read_text() == mine
    assert repoint(str(new)) is None
    assert (old / 'last_checkpoint').read_text() == str(old / 'epoch_2.pth')


def test_is_valid_checkpoint_needs_state_dict_and_meta(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict={}), path)
    assert not is_valid_checkpoint(str(path))
    torch.save(dict(state_dict={}, meta=dict(epoch=1, iter=2)), path)
    assert is_valid_checkpoint(str(path))


# ---------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_a_write_fails(
        tmp_path, monkeypatch):
    path = tmp_path / 'sub' / 'epoch_1.pth'
    atomic_write(str(path), b'old')
    assert path.read_bytes() == b'old'

    def failing_put(backend, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:2])
        raise OSError('disk full')

    monkeypatch.setattr(LocalBackend, 'put', failing_put)
    with pytest.raises(OSError, match='disk full'):
        atomic_write(str(path), b'new content')
    assert path.read_bytes() == b'old'
    assert sorted(p.name for p in path.parent.iterdir()) == ['epoch_1.pth']


def test_a_full_disk_names_the_file_and_keeps_the_old_one(
        tmp_path, monkeypatch):
    """``OSError: [Errno 28] No space left on device`` names no file."""
    path = tmp_path / 'epoch_2.pth'
    atomic_write(str(path), b'old')

    def full_disk(backend, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LocalBackend, 'put', full_disk)
    with pytest.raises(CheckpointWriteError) as err:
        AtomicLocalBackend().put(b'new content', str(path))
    assert isinstance(err.value, OSError)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(path)
    message = str(err.value)
    assert str(path) in message and 'No space left on device' in message
    assert 'nothing was replaced' in message
    assert path.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['epoch_2.pth']


def test_the_atomic_backend_is_what_backend_args_name(tmp_path):
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend=ATOMIC_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put_text('epoch_3.pth', str(tmp_path / 'last_checkpoint'))
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_3.pth'
    # Registered by name only: plain paths keep mmengine's backend.
    assert type(get_file_backend(str(tmp_path))) is LocalBackend


def test_remove_partial_writes(tmp_path):
    (tmp_path / '.epoch_3.pth.tmp-123').write_bytes(b'half')
    (tmp_path / 'epoch_2.pth').write_bytes(b'whole')
    removed = remove_partial_writes(str(tmp_path))
    assert [os.path.basename(p) for p in removed] == ['.epoch_3.pth.tmp-123']
    assert [p.name for p in tmp_path.iterdir()] == ['epoch_2.pth']


# ---------------------------------------------------------------------------
# Checkpoints written before the core redesign
# ---------------------------------------------------------------------------
LEGACY = Path(__file__).resolve().parents[1] / 'data' / 'legacy_checkpoints'
LEGACY_HEADS = {
    'cocoop':
    dict(
        type='CoCoOpHead',
        prompt_learner=dict(
            type='CoCoOpPromptLearner', ctx_init='a photo of a')),
    'coop_csc_middle':
    dict(
        type='CoOpHead',
        prompt_learner=dict(
            type='CoOpPromptLearner',
            n_ctx=4,
            csc=True,
            num_classes=3,
            class_token_position='middle')),
}


@pytest.mark.parametrize('name', sorted(LEGACY_HEADS))
def test_legacy_checkpoints_pass_the_checkpoint_module(name):
    """Same keys through the filter, fit today's model, resumable. (Their
    logits: tests/test_models/test_classifiers/test_legacy_checkpoints.py)
    """
    path = str(LEGACY / f'{name}_epoch_1.pth')
    assert is_valid_checkpoint(path)
    checkpoint = load_checkpoint_file(path)
    assert original_format(checkpoint) is None
    state_dict = checkpoint_filter_fn(checkpoint)
    assert state_dict == checkpoint['state_dict']
    model = MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(
                type='OpenCLIP', arch='mmprompt-tiny-vit', pretrained=None),
            head=LEGACY_HEADS[name]))
    check_checkpoint_fits(model, state_dict, path)


# ---------------------------------------------------------------------------
# What a checkpoint was trained with
# ---------------------------------------------------------------------------
def _tiny(arch='mmprompt-tiny-vit', pretrained=None, **learner):
    learner = dict(type='CoOpPromptLearner', n_ctx=4, **learner)
    return MODELS.build(
        dict(
            type='PromptClassifier',
            clip=dict(type='OpenCLIP', arch=arch, pretrained=pretrained),
            head=dict(type='CoOpHead', prompt_learner=learner),
            class_names=['cat', 'dog']))


@pytest.fixture(scope='module')
def clip_files(tmp_path_factory):
    """The same random tiny CLIP in two formats and precisions, and
    another one."""
    from mmprompt.testing import (random_tiny_clip, save_open_clip_weights,
                                  save_openai_state_dict)
    folder = tmp_path_factory.mktemp('clips')
    clip = random_tiny_clip('mmprompt-tiny-vit', seed=0)
    save_open_clip_weights(clip, str(folder / 'open_clip.pt'))
    save_openai_state_dict(clip, str(folder / 'openai_fp16.pt'))
    save_open_clip_weights(
        random_tiny_clip('mmprompt-tiny-vit', seed=1),
        str(folder / 'other.pt'))
    return folder


def test_weights_fingerprint_tells_weights_apart(clip_files):
    """The same weights under another file, format or precision match;
    other weights (and another random initialisation) do not."""
    one = _tiny(pretrained=str(clip_files / 'open_clip.pt'))
    same = [_tiny(pretrained=str(clip_files / 'openai_fp16.pt'))] + [
        MODELS.build(
            dict(
                type='PromptClassifier',
                clip=dict(
                    type='OpenCLIP',
                    arch='mmprompt-tiny-vit',
                    pretrained=str(clip_files / 'open_clip.pt'),
                    precision=precision),
                head=dict(type='ZeroShotHead')))
        for precision in ('fp16', 'bf16')
    ]
    fingerprint = one.checkpoint_meta()['clip']['weights']
    assert len(fingerprint) >= 16
    for model in same:
        assert weights_match(fingerprint,
                             model.checkpoint_meta()['clip']['weights'])
    for model in (_tiny(pretrained=str(clip_files / 'other.pt')), _tiny()):
        assert not weights_match(fingerprint,
                                 model.checkpoint_meta()['clip']['weights'])


def _saved(model, **meta):
    checkpoint = dict(meta=dict(epoch=1, **meta), state_dict={})
    record_trained_on(checkpoint, model, ['cat', 'dog', 'bird'])
    return checkpoint


def test_record_trained_on():
    model = _tiny()
    checkpoint = _saved(model)
    saved = checkpoint['meta'][TRAINED_ON]
    assert saved['clip']['arch'] == 'mmprompt-tiny-vit'
    assert saved['clip']['pretrained'] is None
    assert saved['head'] == 'CoOpHead'
    assert saved['prompt_learner'] == dict(
        type='CoOpPromptLearner',
        n_ctx=4,
        ctx_init='',
        csc=False,
        class_token_position='end')
    assert saved['class_names'] == ['cat', 'dog', 'bird']
    # Saved and read weights-only, as every checkpoint.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    assert load_checkpoint_file(buffer)['meta'][TRAINED_ON] == saved
    # Without class names given: the model's own.
    checkpoint = dict(meta={})
    record_trained_on(checkpoint, model)
    assert checkpoint['meta'][TRAINED_ON]['class_names'] == ['cat', 'dog']
    # A model that cannot describe itself records nothing.
    checkpoint = dict(meta={})
    record_trained_on(checkpoint, nn.Linear(2, 2))
    assert checkpoint == dict(meta={})


def test_a_checkpoint_of_another_model_is_refused(clip_files):
    """Every case has the same tensor shapes: only the record tells."""
    trained = _tiny(pretrained=str(clip_files / 'open_clip.pt'))
    checkpoint = _saved(trained)
    check_trained_on(checkpoint, trained, 'ckpt.pth')
    cases = [
        # ViT and ResNet of equal text width, as ViT-B-16 and RN50.
        (_tiny('mmprompt-tiny-rn'),
         r"clip.arch: 'mmprompt-tiny-vit' in the checkpoint, "
         r"'mmprompt-tiny-rn' in the config"),
        (_tiny(
            pretrained=str(clip_files / 'open_clip.pt'),
            class_token_position='middle'),
         r"prompt_learner.class_token_position: 'end' in the checkpoint, "
         r"'middle' in the config"),
        (_tiny(
            pretrained=str(clip_files / 'open_clip.pt'),
            ctx_init='a photo of a'),
         r"prompt_learner.ctx_init: '' in the checkpoint, 'a photo of a' "
         'in the config'),
        (_tiny(pretrained=str(clip_files / 'other.pt')),
         r"clip weights: the checkpoint was trained on pretrained='\S*"
         r"open_clip.pt', the config loads pretrained='\S*other.pt', and "
         'their values differ'),
    ]
    for model, expected in cases:
        with pytest.raises(CheckpointMismatchError, match=expected) as err:
            check_trained_on(checkpoint, model, 'ckpt.pth')
        assert "checkpoint 'ckpt.pth' was trained with another model" in \
            str(err.value)
        assert '--ignore-checkpoint-meta' in str(err.value)
        # What the user asks for explicitly loads, with a warning.
        check_trained_on(checkpoint, model, 'ckpt.pth', ignore=True)
    # The same weights copied elsewhere, in another format: no difference.
    check_trained_on(checkpoint,
                     _tiny(pretrained=str(clip_files / 'openai_fp16.pt')),
                     'ckpt.pth')


def test_a_checkpoint_that_records_nothing_loads_with_a_warning(monkeypatch):
    from mmprompt.utils import checkpoint as module
    logged = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    check_trained_on(dict(meta=dict(epoch=1)), _tiny(), 'old.pth')
    check_trained_on(dict(state_dict={}), _tiny(), 'converted.pth')
    assert len(logged) == 2
    assert "'old.pth' does not record the model it was trained" in logged[0]
    # Models that cannot describe themselves are not checked.
    check_trained_on(dict(meta={}), nn.Linear(2, 2), 'x.pth')
    assert len(logged) == 2


def test_the_same_weights_read_with_another_activation_are_refused(tmp_path):
    """One file read as OpenAI's (QuickGELU) or as open_clip's (GELU):
    equal weights, features ~1% apart."""
    import json

    import open_clip

    from mmprompt.testing import random_tiny_clip, save_openai_state_dict
    config = dict(open_clip.get_model_config('mmprompt-tiny-vit'))
    config['quick_gelu'] = False
    arch = tmp_path / 'mmprompt-tiny-vit-gelu-a1.json'
    arch.write_text(json.dumps(config))
    open_clip.add_model_config(str(arch))
    path = str(tmp_path / 'openai_fp32.pt')
    save_openai_state_dict(
        random_tiny_clip('mmprompt-tiny-vit-gelu-a1'), path, torch.float32)

    def model(weights_format):
        return MODELS.build(
            dict(
                type='PromptClassifier',
                clip=dict(
                    type='OpenCLIP',
                    arch='mmprompt-tiny-vit-gelu-a1',
                    pretrained=path,
                    weights_format=weights_format),
                head=dict(
                    type='CoOpHead',
                    prompt_learner=dict(type='CoOpPromptLearner', n_ctx=4))))

    openai, open_clip_reading = model('auto'), model('open_clip')
    checkpoint = _saved(openai)
    assert checkpoint['meta'][TRAINED_ON]['clip']['activation'] == \
        'QuickGELU'
    with pytest.raises(
            CheckpointMismatchError,
            match=r"clip.activation: 'QuickGELU' in the checkpoint, 'GELU' "
            'in the config'):
        check_trained_on(checkpoint, open_clip_reading, 'ckpt.pth')
    check_trained_on(checkpoint, model('openai'), 'ckpt.pth')
