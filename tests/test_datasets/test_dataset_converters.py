# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/dataset_converters: make_split.py and check_dataset.py."""
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from dataset_trees import make_images, write_lines

import mmprompt  # noqa: F401
from mmprompt.registry import DATASETS

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'dataset_converters'


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', ['make_split', 'check_dataset'])
def test_help(name):
    out = subprocess.run([sys.executable,
                          str(TOOLS / f'{name}.py'), '-h'],
                         capture_output=True,
                         text=True,
                         check=True).stdout
    assert 'usage:' in out and '--' in out


@pytest.fixture
def tree(tmp_path):
    image_dir = tmp_path / 'mine' / 'images'
    for cls, n in (('zebra', 10), ('Ant', 7), ('cat', 4)):
        make_images(image_dir / cls, [f'{i}.png' for i in range(n)])
    write_lines(image_dir / 'cat' / 'notes.txt', ['not an image'])
    write_lines(image_dir / 'cat' / '.hidden.png', ['hidden'])
    return image_dir


def test_make_split_50_20_30(tree, capsys):
    make_split = load_tool('make_split')
    out = tree.parent / 'split.json'
    assert make_split.main([str(tree), '--out', str(out), '--seed', '4']) == 0
    assert '3 classes' in capsys.readouterr().out
    content = json.loads(out.read_text())
    # sorted folders (capitals first) are the labels; an independent
    # statement of the original's rule: shuffle, round(n*.5), round(n*.2)
    rng = random.Random(4)
    expected = {'train': [], 'val': [], 'test': []}
    for label, (cls, n) in enumerate((('Ant', 7), ('cat', 4), ('zebra', 10))):
        ims = sorted(f'{cls}/{i}.png' for i in range(n))
        rng.shuffle(ims)
        n_tr, n_val = round(n * 0.5), round(n * 0.2)
        for split, part in (('train', ims[:n_tr]), ('val',
                                                    ims[n_tr:n_tr + n_val]),
                            ('test', ims[n_tr + n_val:])):
            expected[split] += [[p, label, cls] for p in part]
    assert content == expected
    # round(3.5) = 4, round(1.4) = 1 for Ant; round(2) = 2, round(.8) = 1
    assert [len(content[s]) for s in ('train', 'val', 'test')
            ] == [4 + 2 + 5, 1 + 1 + 2, 2 + 1 + 3]
    ds = DATASETS.build(
        dict(
            type='SplitJsonDataset',
            data_root=str(tree.parent),
            split_file='split.json',
            image_dir='images',
            split='val',
            check_images='all'))
    assert ds.metainfo['classes'] == ('Ant', 'cat', 'zebra')
    # existing output is kept unless --force
    assert make_split.main([str(tree), '--out', str(out)]) == 1
    assert make_split.main(
        [str(tree), '--out',
         str(out), '--force', '--rename', 'Ant=ant']) == 0
    assert json.loads(out.read_text())['test'][0][2] == 'ant'


def test_make_split_errors(tree, tmp_path, capsys):
    make_split = load_tool('make_split')
    with pytest.raises(SystemExit):
        make_split.main([
            str(tree), '--out', 'x.json', '--p-train', '0.9', '--p-val', '0.2'
        ])
    write_lines(tree / 'tiny' / 'list.txt', ['x'])
    make_images(tree / 'tiny', ['0.png', '1.png'])
    assert make_split.main([str(tree), '--out', str(tmp_path / 'o.json')]) == 1
    assert 'too few' in capsys.readouterr().err
    assert make_split.main([str(tmp_path / 'absent'), '--out', 'o.json']) == 1


def test_check_dataset_counts_and_missing(split_tree, capsys):
    check = load_tool('check_dataset')
    root = split_tree['root']
    args = [
        'SplitJsonDataset', '--data-root',
        str(root), '--image-dir', 'imgs', '--num-shots', '2'
    ]
    assert check.main(args) == 0
    out = capsys.readouterr().out
    assert '[train] SplitJsonDataset: 6 images, 3 classes' in out
    assert '[val] SplitJsonDataset: 6 images' in out
    assert '[test] SplitJsonDataset: 9 images' in out
    assert 'red_fox' in out and 'Grey Wolf' in out
    missing = root / 'imgs' / 'dog' / 'test_2.png'
    missing.unlink()
    assert check.main(args + ['--splits', 'test']) == 1
    out = capsys.readouterr().out
    assert '1 missing image(s)' in out and str(missing) in out


def test_check_dataset_config(split_tree, tmp_path, capsys):
    check = load_tool('check_dataset')
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        'default_scope = "mmprompt"\n'
        'test_dataloader = dict(batch_size=2, dataset=dict('
        f'type="SplitJsonDataset", data_root=r"{split_tree["root"]}", '
        'image_dir="imgs", split="test", subsample_classes="base", '
        'pipeline=[dict(type="LoadImageFromFile")]))\n')
    assert check.main([str(cfg)]) == 0
    out = capsys.readouterr().out
    assert '[test] SplitJsonDataset: 6 images, 2 classes' in out
    assert check.main(['OxfordPets', '--data-root',
                       str(tmp_path / 'absent')]) == 1
    assert 'cannot build OxfordPets' in capsys.readouterr().out


def test_make_split_refuses_what_would_give_a_wrong_split(
        tree, tmp_path, capsys):
    """An empty folder, --rename/--ignore of a folder that is not there and
    an --out that is a folder are errors; nothing is written."""
    make_split = load_tool('make_split')
    out = tmp_path / 'split.json'
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert make_split.main([str(empty), '--out', str(out)]) == 1
    err = capsys.readouterr().err
    assert 'no class folders' in err and str(empty) in err
    assert make_split.main(
        [str(tree), '--out',
         str(out), '--ignore', 'Ant', 'cat', 'zebra']) == 1
    assert 'no class folders' in capsys.readouterr().err
    assert make_split.main(
        [str(tree), '--out',
         str(out), '--rename', 'ant=insect', 'cat=feline']) == 1
    err = capsys.readouterr().err
    assert "--rename: no class folder 'ant'" in err
    assert "'Ant', 'cat', 'zebra'" in err
    assert make_split.main(
        [str(tree), '--out',
         str(out), '--ignore', 'zebras']) == 1
    assert "--ignore: no class folder 'zebras'" in capsys.readouterr().err
    assert not out.exists()
    folder = tmp_path / 'out_dir'
    folder.mkdir()
    for extra in ([], ['--force']):
        assert make_split.main([str(tree), '--out', str(folder)] + extra) == 1
        err = capsys.readouterr().err
        assert 'is a folder' in err and 'split.json' in err
    assert list(folder.iterdir()) == []


def test_split_files_get_the_umask_mode(tree, tmp_path):
    """Split files are shared in data folders: the umask's mode, not
    mkstemp's 0600."""
    import os
    import stat

    from mmprompt.datasets import write_split_file
    make_split = load_tool('make_split')
    old = os.umask(0o022)
    try:
        out = tmp_path / 'split.json'
        assert make_split.main([str(tree), '--out', str(out)]) == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        os.umask(0o002)
        other = tmp_path / 'sub' / 'split_zhou_X.json'
        write_split_file({'train': [], 'val': [], 'test': []}, str(other))
        assert stat.S_IMODE(other.stat().st_mode) == 0o664
        # overwriting keeps no temporary file behind
        write_split_file({'train': [], 'val': [], 'test': []}, str(other))
        assert sorted(
            p.name for p in other.parent.iterdir()) == ['split_zhou_X.json']
    finally:
        os.umask(old)


def test_check_dataset_unknown_type_or_config(split_tree, tmp_path, capsys):
    """An unknown dataset type is one error with close names (it was the
    registry's KeyError once per split, exit 0 with a config); a missing
    config is an error, not a traceback."""
    check = load_tool('check_dataset')
    with pytest.raises(SystemExit) as err:
        check.main(['OxfordPet', '--data-root', str(split_tree['root'])])
    message = str(err.value)
    assert message.startswith('check_dataset.py: error:')
    assert "'OxfordPet' is not a registered dataset type" in message
    assert "'OxfordPets'" in message
    cfg = tmp_path / 'cfg.py'
    cfg.write_text('default_scope = "mmprompt"\n'
                   'test_dataloader = dict(batch_size=2, dataset=dict('
                   f'type="SplitJsonDatset", data_root=r"{tmp_path}"))\n')
    with pytest.raises(SystemExit, match="Did you mean 'SplitJsonDataset'"):
        check.main([str(cfg)])
    with pytest.raises(SystemExit, match=r"config 'absent.py': no such file"):
        check.main(['absent.py'])
    assert 'cannot build' not in capsys.readouterr().out
