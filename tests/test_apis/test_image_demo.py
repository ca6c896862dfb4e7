# Copyright (c) mmprompt contributors. All rights reserved.
"""demo/image_demo.py, run in-process on generated images."""
import importlib.util
import json
from pathlib import Path

import pytest
from inferencer_testing import make_images, write_config

DEMO = Path(__file__).resolve().parents[2] / 'demo' / 'image_demo.py'


def load_demo():
    spec = importlib.util.spec_from_file_location('mmprompt_image_demo', DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_image_demo(tmp_path, capsys):
    demo = load_demo()
    images = make_images(tmp_path / 'images', count=3)
    config = write_config(tmp_path / 'coop_tiny.py')
    out = tmp_path / 'preds.json'
    results = demo.main(images + [
        '--config', config, '--classes', 'cat,dog,sea_lion', '--topk', '2',
        '--out',
        str(out)
    ])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(images) == len(results)
    for line, path, result in zip(lines, images, results):
        assert line.startswith(f'{path}: {result["pred_class"]} ')
        assert result['pred_class'] in ('cat', 'dog', 'sea_lion')
        assert len(result['topk']) == 2
    saved = json.loads(out.read_text())
    assert [r['img_path'] for r in saved] == images
    assert [r['pred_class']
            for r in saved] == [r['pred_class'] for r in results]

    names = tmp_path / 'classes.txt'
    names.write_text('zebra\n\nred panda\n')
    results = demo.main(
        images[:1] +
        ['--config', config, '--classes-file',
         str(names), '--topk', '5'])
    assert [c for c, _ in results[0]['topk']
            ] == sorted(['zebra', 'red panda'],
                        key=dict(results[0]['topk']).get,
                        reverse=True)


def test_image_demo_errors(tmp_path):
    demo = load_demo()
    images = make_images(tmp_path / 'images', count=1)
    config = write_config(tmp_path / 'coop_tiny.py')
    with pytest.raises(SystemExit, match='no such image'):
        demo.main([str(tmp_path / 'nope.png'), '--config', config])
    # No --classes and no readable test set in the config.
    with pytest.raises(SystemExit, match='no class names'):
        demo.main(images + ['--config', config])


def test_image_demo_names_a_corrupt_image(tmp_path):
    demo = load_demo()
    images = make_images(tmp_path / 'images', count=2)
    bad = tmp_path / 'images' / 'broken.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00' * 20)
    config = write_config(tmp_path / 'coop_tiny.py')
    with pytest.raises(SystemExit) as err:
        demo.main(images +
                  [str(bad), '--config', config, '--classes', 'cat,dog'])
    message = str(err.value)
    assert message.startswith('image_demo.py: error: cannot read image')
    assert str(bad) in message and 'UnidentifiedImageError' in message
