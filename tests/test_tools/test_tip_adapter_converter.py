# Copyright (c) mmprompt contributors. All rights reserved.
"""tools/model_converters/tip_adapter_to_mmprompt.py: the original
Tip-Adapter's cache files (keys, values, Tip-Adapter-F's best_F) become a
TipAdapter checkpoint that gives the original's logits."""
import pytest
import torch
import torch.nn as nn
from tools_testing import golden_dir, load_tool

from mmprompt.models.adapters import TipAdapter
from mmprompt.utils import load_checkpoint_file


@pytest.fixture(scope='module')
def converter():
    return load_tool('model_converters/tip_adapter_to_mmprompt.py')


@pytest.fixture(scope='module')
def golden():
    root = golden_dir('adapters')
    load = lambda name: torch.load(root / name, weights_only=True)  # noqa
    return dict(
        data=load('data.pt'),
        text=load('text.pt'),
        cache=load('tip/cache.pt'),
        tip=load('tip/tip_adapter.pt'),
        tip_f=load('tip/tip_adapter_f.pt'),
        fp16=load('tip/fp16.pt'))


def write_original_cache(folder, keys, values, best_f=None, shots=4):
    """The files main.py writes into its cache_dir."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(keys, folder / f'keys_{shots}shots.pt')
    torch.save(values, folder / f'values_{shots}shots.pt')
    if best_f is not None:  # torch.save(adapter.weight, ...)
        torch.save(nn.Parameter(best_f), folder / f'best_F_{shots}shots.pt')
    return folder


def adapter_of(path, **kwargs) -> TipAdapter:
    state = load_checkpoint_file(str(path))['state_dict']
    tip = TipAdapter(**kwargs)
    tip.load_state_dict({k[len('adapter.'):]: v for k, v in state.items()})
    return tip


def rel_err(a, b):
    return float(
        (a.double() - b.double()).abs().max() / b.double().abs().max())


def test_tip_adapter_cache_gives_the_originals_logits(converter, golden,
                                                      tmp_path):
    g = golden
    cache = write_original_cache(tmp_path / 'cache', g['cache']['keys'],
                                 g['cache']['values'],
                                 g['tip_f']['best_weight'])
    W = g['text']['W_imagenet7'].t()
    test = g['data']['features']['test']
    converter.main([
        str(cache),
        str(tmp_path / 'tip.pth'), '--shots', '4', '--alpha',
        str(g['tip']['best_alpha']), '--beta',
        str(g['tip']['best_beta'])
    ])
    tip = adapter_of(tmp_path / 'tip.pth')
    assert rel_err(tip(test, W), g['tip']['test_tip_logits_best']) <= 1e-5
    meta = load_checkpoint_file(str(tmp_path / 'tip.pth'))['meta']
    assert 'gaopengcuhk/Tip-Adapter' in meta['source']
    # Tip-Adapter-F: its trained keys (the test-selected epoch's) and the
    # alpha, beta it printed after the val search.
    converter.main([
        str(cache),
        str(tmp_path / 'tip_f.pth'), '--shots', '4', '--finetuned', '--alpha',
        str(g['tip_f']['best_alpha']), '--beta',
        str(g['tip_f']['best_beta'])
    ])
    tip_f = adapter_of(tmp_path / 'tip_f.pth', finetune=True)
    assert rel_err(tip_f(test, W), g['tip_f']['final_test_logits']) <= 1e-5


def test_fp16_cache(converter, golden, tmp_path):
    h = golden['fp16']
    cache = write_original_cache(tmp_path / 'cache', h['keys'], h['values'])
    converter.main([
        str(cache),
        str(tmp_path / 'tip.pth'), '--shots', '4', '--alpha',
        str(h['best_alpha']), '--beta',
        str(h['best_beta'])
    ])
    tip = adapter_of(tmp_path / 'tip.pth', precision='fp16')
    assert tip.cache_keys.dtype == torch.float16
    assert torch.equal(tip.cache_keys.t(), h['keys'])
    W = h['clip_weights'].t()
    logits = tip.logits(h['test_features'], W, float(tip.alpha),
                        float(tip.beta))
    assert rel_err(logits, h['test_tip_logits_best']) <= 2e-3


def test_errors_are_named(converter, golden, tmp_path, capsys):
    g = golden
    cache = write_original_cache(tmp_path / 'cache', g['cache']['keys'],
                                 g['cache']['values'])
    with pytest.raises(SystemExit, match='best_F_4shots.pt'):
        converter.main([
            str(cache),
            str(tmp_path / 'a.pth'), '--shots', '4', '--finetuned'
        ])
    with pytest.raises(SystemExit, match='keys_16shots.pt'):
        converter.main([str(cache), str(tmp_path / 'a.pth'), '--shots', '16'])
    torch.save(g['cache']['values'][:5], cache / 'values_4shots.pt')
    with pytest.raises(SystemExit, match='5 entries, the keys 28'):
        converter.main([str(cache), str(tmp_path / 'a.pth'), '--shots', '4'])
    torch.save({'not': 'a tensor'}, cache / 'values_4shots.pt')
    with pytest.raises(SystemExit, match='not the original'):
        converter.main([str(cache), str(tmp_path / 'a.pth'), '--shots', '4'])
    torch.save(g['cache']['values'], cache / 'values_4shots.pt')
    converter.main([str(cache), str(tmp_path / 'b.pth'), '--shots', '4'])
    with pytest.raises(SystemExit, match='exists; pass --force'):
        converter.main([str(cache), str(tmp_path / 'b.pth'), '--shots', '4'])
    assert float(adapter_of(tmp_path / 'b.pth').alpha) == 1.0
