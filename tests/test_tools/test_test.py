# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/test.py: checkpoints of tools/train.py, of the original code
(converted or not), and refusal of unsafe or unfitting files."""
import io
import os
import re

import mmengine
import pytest
import torch
from mmengine.config import Config
from tools_testing import CLASSES, golden_dir, load_tool, run_tool

ORIGINAL = ('tiny-vit', 'coop_end_word-init')  # ctx (4, 64): fits the config


def test_reproduces_the_accuracy_of_training(trained, tiny_config, tmp_path):
    found = re.findall(
        r'Epoch\(val\) \[2\]\[\d+/\d+\]\s+accuracy/top1: ([\d.]+)',
        trained['log'])
    assert found, trained['log'][-3000:]
    out = tmp_path / 'metrics.json'
    log = run_tool([
        'test.py',
        str(tiny_config),
        str(trained['work_dir'] / 'epoch_2.pth'), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), '--out-item', 'metrics', '--cfg-options',
        'test_dataloader.dataset.split=val'
    ],
                   cwd=tmp_path).stdout
    metrics = mmengine.load(str(out))
    assert metrics['accuracy/top1'] == pytest.approx(
        float(found[-1]), abs=1e-4)
    # progress of the test loop, as lines when not on a terminal
    assert 'Testing: 2/2 batches (100%)' in log


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """The golden original checkpoint, converted by the CLI."""
    src = golden_dir(*ORIGINAL) / 'model.pth.tar-10'
    dst = tmp_path_factory.mktemp('converted') / 'coop.pth'
    run_tool(['model_converters/coop_to_mmprompt.py',
              str(src),
              str(dst)],
             cwd=dst.parent)
    return dict(src=src, dst=dst)


def test_original_checkpoint_converted_or_not(converted, tiny_config,
                                              tmp_path):
    preds_file = tmp_path / 'preds.json'
    run_tool([
        'test.py',
        str(tiny_config),
        str(converted['dst']), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(preds_file)
    ],
             cwd=tmp_path)
    preds = mmengine.load(str(preds_file))
    assert len(preds) == 2 * len(CLASSES)
    assert [p['sample_idx'] for p in preds] == list(range(len(preds)))
    for pred in preds:
        assert pred['pred_class'] == CLASSES[pred['pred_label']]
        assert len(pred['pred_score']) == len(CLASSES)
        assert pred['pred_score'][pred['pred_label']] == max(
            pred['pred_score'])
    accuracy = 100 * sum(p['pred_label'] == p['gt_label']
                         for p in preds) / len(preds)

    # The original file as it is: converted in memory, same predictions.
    metrics_file = tmp_path / 'metrics.json'
    log = run_tool([
        'test.py',
        str(tiny_config),
        str(converted['src']), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(metrics_file), '--out-item', 'metrics'
    ],
                   cwd=tmp_path).stdout
    assert 'checkpoint of the original CoOp/CoCoOp code' in log
    assert mmengine.load(str(metrics_file))['accuracy/top1'] == \
        pytest.approx(accuracy, abs=1e-4)


def test_malicious_checkpoint_is_refused(tiny_config, tmp_path):
    marker = tmp_path / 'code_ran'

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    evil = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {
        'head.prompt_learner.ctx': Payload()
    }}, str(evil))
    proc = run_tool(['test.py', str(tiny_config),
                     str(evil)],
                    cwd=tmp_path,
                    check=False)
    assert proc.returncode != 0
    assert 'test.py: error: refusing to load' in proc.stdout
    assert 'system' in proc.stdout  # names the global it refused
    assert 'Traceback' not in proc.stdout
    assert not marker.exists()


# --------------------------------------------------------------------------
# a checkpoint of another model; no checkpoint
# --------------------------------------------------------------------------
def test_a_checkpoint_of_another_model_is_refused(trained, tiny_config,
                                                  tmp_path):
    """The shapes fit (the tiny ViT and ResNet have the same text width, as
    ViT-B-16 and RN50): mmengine alone tests the wrong model silently."""
    checkpoint = str(trained['work_dir'] / 'epoch_2.pth')
    test_tool = load_tool('test.py')
    for option, expected in [
        ('model.clip.arch=mmprompt-tiny-rn',
         "clip.arch: 'mmprompt-tiny-vit' in the checkpoint, "
         "'mmprompt-tiny-rn' in the config"),
        ('model.head.prompt_learner.class_token_position=middle',
         "prompt_learner.class_token_position: 'end' in the checkpoint, "
         "'middle' in the config"),
    ]:
        with pytest.raises(SystemExit) as err:
            test_tool.main([
                str(tiny_config), checkpoint, '--work-dir',
                str(tmp_path), '--no-progress', '--cfg-options', option
            ])
        message = str(err.value)
        assert message.startswith('test.py: error: checkpoint '), message
        assert 'was trained with another model' in message
        assert expected in message and '--ignore-checkpoint-meta' in message
    # Asked for explicitly: tested.
    metrics = test_tool.main([
        str(tiny_config), checkpoint, '--work-dir',
        str(tmp_path), '--no-progress', '--ignore-checkpoint-meta',
        '--cfg-options',
        'model.head.prompt_learner.class_token_position=middle'
    ])
    assert 'accuracy/top1' in metrics


def test_no_checkpoint_for_a_learned_prompt_is_refused(tiny_config, tmp_path):
    """It evaluated the random initial context, with one INFO line."""
    test_tool = load_tool('test.py')
    with pytest.raises(SystemExit) as err:
        test_tool.main([str(tiny_config), '--work-dir', str(tmp_path)])
    message = str(err.value)
    assert message.startswith('test.py: error: no checkpoint given'), message
    assert 'head.prompt_learner.ctx' in message
    assert '--allow-untrained' in message
    metrics = test_tool.main([
        str(tiny_config), '--work-dir',
        str(tmp_path), '--no-progress', '--allow-untrained'
    ])
    assert 'accuracy/top1' in metrics
    # Zero-shot CLIP learns nothing: no checkpoint needed.
    zero_shot = tmp_path / 'zero_shot.py'
    zero_shot.write_text(f'_base_ = {str(tiny_config)!r}\n'
                         "model = dict(head=dict(_delete_=True, "
                         "type='ZeroShotHead'))\n")
    metrics = test_tool.main(
        [str(zero_shot), '--work-dir',
         str(tmp_path), '--no-progress'])
    assert 'accuracy/top1' in metrics


# --------------------------------------------------------------------------
# in-process: the pieces of test.py
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def test_tool():
    return load_tool('test.py')


def test_read_checkpoint_refusals(test_tool, tmp_path):
    with pytest.raises(SystemExit, match='no such file'):
        test_tool.read_checkpoint(str(tmp_path / 'missing.pth'))
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(SystemExit, match='garbage.pth'):
        test_tool.read_checkpoint(str(garbage))


def test_unreadable_checkpoints_are_named_before_building(
        test_tool, tiny_config, tmp_path):
    """A text file (torch: ``IndexError: pop from empty list``) and a cut
    file (``OSError: [Errno 22] Invalid argument``, no name)."""
    text = tmp_path / 'last_checkpoint'
    text.write_text(str(tmp_path / 'epoch_2.pth'))
    with pytest.raises(SystemExit) as err:
        test_tool.main([str(tiny_config), str(text)])
    assert "last_checkpoint' is a text file, not a checkpoint" in str(
        err.value)
    assert 'IndexError' not in str(err.value)

    buffer = io.BytesIO()
    torch.save({'state_dict': {'w': torch.zeros(64, 64)}}, buffer)
    cut = tmp_path / 'epoch_1.pth'
    cut.write_bytes(buffer.getvalue()[:9000])
    with pytest.raises(SystemExit, match=r'epoch_1.pth.*truncated') as err:
        test_tool.main([str(tiny_config), str(cut)])
    assert 'Errno 22' not in str(err.value).split('(')[0]


def test_unwritable_out_is_refused_before_building(test_tool, tiny_config,
                                                   tmp_path, monkeypatch):
    """A read-only ``--out`` used to fail after the whole test had run."""
    import mmengine.runner
    monkeypatch.setattr(mmengine.runner.Runner, 'from_cfg',
                        lambda cfg: pytest.fail('built a Runner'))
    readonly = tmp_path / 'readonly'
    readonly.mkdir()
    readonly.chmod(0o555)
    # root writes anywhere but in /sys
    unwritable = ['/sys/mmprompt/preds.json'] if os.geteuid() == 0 else [
        str(readonly / 'preds.json'),
        str(readonly / 'sub' / 'preds.json')
    ]
    folder = tmp_path / 'preds.json'
    folder.mkdir()
    afile = tmp_path / 'notes.txt'
    afile.write_text('mine')
    cases = [(path, 'cannot be written') for path in unwritable] + [
        (str(folder), 'is a folder'),
        (str(afile / 'preds.json'), 'notes.txt.* is not a folder'),
    ]
    for out, expected in cases:
        with pytest.raises(SystemExit, match=expected) as err:
            test_tool.main([
                str(tiny_config),
                str(tmp_path / 'epoch_1.pth'), '--out', out
            ])
        assert str(err.value).startswith(f'test.py: error: --out {out!r}')
    assert afile.read_text() == 'mine'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'notes.txt', 'preds.json', 'readonly'
    ]
    assert not list(readonly.iterdir())
    readonly.chmod(0o755)


def test_a_top_level_variable_copied_by_the_config_is_named(
        test_tool, tiny_config, tiny_data, tmp_path, monkeypatch):
    """``--cfg-options data_root=...`` silently changed nothing."""
    config = tmp_path / 'with_root.py'
    config.write_text(f'_base_ = {str(tiny_config)!r}\n'
                      f'data_root = {str(tiny_data)!r}\n'
                      'test_dataloader = dict(dataset=dict('
                      'data_root=data_root))\n')
    logged = []
    monkeypatch.setattr(test_tool, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    args = test_tool.parse_args(
        [str(config), '--cfg-options', 'data_root=/mnt/x'])
    test_tool.merge_args(Config.fromfile(str(config)), args)
    [warning] = [m for m in logged if 'data_root' in m]
    assert 'test_dataloader.dataset.data_root=/mnt/x' in warning.split(
        'Set them instead: --cfg-options ')[1]


def test_out_suffix_is_checked(test_tool):
    with pytest.raises(SystemExit):
        test_tool.parse_args(['c.py', 'c.pth', '--out', 'preds.txt'])
    args = test_tool.parse_args(
        ['c.py', 'c.pth', '--out', 'm.yaml', '--out-item', 'metrics', '--amp'])
    assert args.out_item == 'metrics' and args.amp


def test_urls_are_refused(test_tool, tiny_config):
    # mmengine would unpickle a downloaded file without weights_only.
    with pytest.raises(SystemExit, match='not a local file'):
        test_tool.main([str(tiny_config), 'https://example.com/epoch_1.pth'])


def test_original_kgcoop_checkpoint_as_it_is(tiny_config, tmp_path):
    """KgCoOp's model.pth.tar-N (a pickled scheduler inside, read as data;
    its unused modules dropped) tested as it is, on a KgCoOp config."""
    text = tiny_config.read_text()
    coop = "prompt_learner=dict(type='CoOpPromptLearner', n_ctx=4)))"
    assert coop in text
    config = tmp_path / 'kgcoop_tiny.py'
    config.write_text(
        text.replace("type='CoOpHead'", "type='KgCoOpHead'").replace(
            coop, "prompt_learner=dict(type='CoOpPromptLearner', "
            "ctx_init='a photo of a'), templates='DescribableTextures'))"))
    src = golden_dir('kgcoop', 'tiny-vit',
                     'kgcoop_word-init_w8') / 'model.pth.tar-10'
    metrics_file = tmp_path / 'metrics.json'
    log = run_tool([
        'test.py',
        str(config),
        str(src), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(metrics_file), '--out-item', 'metrics'
    ],
                   cwd=tmp_path).stdout
    assert 'checkpoint of the original KgCoOp code' in log
    assert 'accuracy/top1' in mmengine.load(str(metrics_file))


def test_original_deep_prompt_checkpoints_as_they_are(tiny_config, tmp_path):
    """IVLP's VLPromptLearner/model.pth.tar-N (the whole saved model: frozen
    CLIP, token buffers, prompts inside the CLIP modules) tested as it is on
    an IVLP config; MaPLe's refused on it, naming both methods."""
    text = tiny_config.read_text()
    coop = "prompt_learner=dict(type='CoOpPromptLearner', n_ctx=4)))"
    assert coop in text
    config = tmp_path / 'ivlp_tiny.py'
    config.write_text(
        text.replace("type='CoOpHead'", "type='DeepPromptHead'").replace(
            coop, "prompt_learner=dict(type='IVLPPromptLearner', "
            'text_depth=2, vision_depth=2)))'))
    src = golden_dir('maple', 'ivlp_default') / 'VLPromptLearner' / \
        'model.pth.tar-5'
    metrics_file = tmp_path / 'metrics.json'
    log = run_tool([
        'test.py',
        str(config),
        str(src), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(metrics_file), '--out-item', 'metrics'
    ],
                   cwd=tmp_path).stdout
    assert 'checkpoint of the original IVLP code' in log
    assert 'accuracy/top1' in mmengine.load(str(metrics_file))
    maple = golden_dir('maple', 'maple_default') / \
        'MultiModalPromptLearner' / 'model.pth.tar-5'
    proc = run_tool([
        'test.py',
        str(config),
        str(maple), '--work-dir',
        str(tmp_path / 'work2')
    ],
                    cwd=tmp_path,
                    check=False)
    assert proc.returncode != 0
    assert (
        'original MaPLe code, whose prompts load into a '
        'MaPLePromptLearner; the model has a IVLPPromptLearner') in proc.stdout
