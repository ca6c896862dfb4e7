# Copyright (c) mmprompt contributors. All rights reserved.
"""Tip-Adapter and Tip-Adapter-F against the original's own outputs
(``golden/adapters/tip``): the cache, the logits, the α/β grid and its
choice, Tip-Adapter-F's keys after every AdamW step, the validation-only
protocol, and the original's fp16 run."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmengine.optim.scheduler import CosineAnnealingLR

from mmprompt.models.adapters import FeatureSet, TipAdapter, tip_search_grid
from mmprompt.registry import MODELS

TOL = 1e-5  # relative error, max |a - b| / max |b|
# The schedule of configs/_base_/schedules/tip-adapter-f_1xb256-ep20.py.
OPTIMIZER = dict(type='AdamW', lr=0.001, eps=1e-4, weight_decay=0.01)


def rel_err(got: torch.Tensor, expected: torch.Tensor) -> float:
    got, expected = got.detach().double(), expected.detach().double()
    return float((got - expected).abs().max() / expected.abs().max())


class Golden:

    def __init__(self, root):
        folder = root / 'adapters'

        def load(name):
            return torch.load(folder / name, weights_only=True)

        self.data = load('data.pt')
        self.text = load('text.pt')
        self.cache = load('tip/cache.pt')
        self.tip = load('tip/tip_adapter.pt')
        self.tip_f = load('tip/tip_adapter_f.pt')
        self.fp16 = load('tip/fp16.pt')
        self.config = (folder / 'tip' / 'config.json').read_text()

    @property
    def W(self) -> torch.Tensor:
        """The zero-shot weights as mmprompt holds them, ``(K, D)``."""
        return self.text['W_imagenet7'].t()

    def split(self, name: str) -> FeatureSet:
        return FeatureSet(self.data['features'][name][None],
                          self.data['labels'][name], name)

    def fitted(self, **kwargs) -> TipAdapter:
        tip = TipAdapter(alpha=10., beta=1., **kwargs)
        tip.fit(
            FeatureSet(self.cache['pass_features'], self.cache['labels'],
                       'train'), None, self.W)
        return tip


@pytest.fixture(scope='module')
def golden(golden_dir):
    return Golden(golden_dir)


def test_cache(golden):
    tip = golden.fitted()
    # The mean of the 10 raw views, normalised; values one-hot.
    assert rel_err(tip.cache_keys.t(), golden.cache['keys']) <= TOL
    assert torch.equal(tip.cache_values, golden.cache['values'].float())
    assert not tip.cache_keys.requires_grad
    assert golden.fitted(finetune=True).cache_keys.requires_grad


def test_logits(golden):
    tip = golden.fitted()
    val = golden.data['features']['val']
    assert rel_err(tip(val, golden.W),
                   golden.tip['val_tip_logits_init']) <= TOL
    # α = 0: zero-shot CLIP at the original's hard-coded scale 100.
    tip.alpha.fill_(0.)
    assert rel_err(tip(val, golden.W),
                   golden.tip['val_zeroshot_logits']) <= TOL
    assert rel_err(
        tip(golden.data['features']['test'], golden.W),
        golden.tip['test_zeroshot_logits']) <= TOL


def test_search_grid_and_choice(golden):
    tip = golden.fitted()
    assert torch.equal(tip_search_grid(50, 200), golden.tip['beta_list'])
    assert torch.equal(tip_search_grid(50, 20), golden.tip['alpha_list'])
    grid = tip.search_accuracy(golden.split('val'), golden.W)
    assert torch.equal(grid['correct'].double() * 100. / 70,
                       golden.tip['val_acc_grid'])
    chosen = tip.search(golden.split('val'), golden.W)
    assert chosen['beta'] == dict(value=golden.tip['best_beta'], split='val')
    assert chosen['alpha'] == dict(value=golden.tip['best_alpha'], split='val')
    test = golden.data['features']['test']
    logits = tip(test, golden.W)
    assert rel_err(logits, golden.tip['test_tip_logits_best']) <= TOL
    acc = 100. * float(
        (logits.argmax(-1) == golden.data['labels']['test']).sum()) / 70
    assert acc == pytest.approx(golden.tip['test_acc'])


def test_search_keeps_the_first_best_point(golden):
    # 98 grid points tie at the best accuracy: the original keeps the
    # smallest β, then the smallest α (β the outer loop, a strict '>').
    grid = golden.tip['val_acc_grid']
    ties = (grid == grid.max()).nonzero()
    assert len(ties) > 1
    i, j = ties[0].tolist()
    assert golden.tip['beta_list'][i] == golden.tip['best_beta']
    assert golden.tip['alpha_list'][j] == golden.tip['best_alpha']


def test_selection_on_test_differs(golden):
    """main_imagenet.py searches on the test features: mmprompt refuses
    it; measured (not chosen) here, its grid is the original's."""
    tip = golden.fitted()
    test = golden.split('test')
    with pytest.raises(ValueError, match="'test'"):
        tip.search(test, golden.W)
    grid = tip.search_accuracy(test, golden.W)['correct'].double() * 100 / 70
    assert torch.equal(grid, golden.tip['imagenet_script']['test_acc_grid'])
    i, j = divmod(int(grid.reshape(-1).argmax()), grid.shape[1])
    assert float(tip_search_grid(50, 200)[i]) == pytest.approx(
        golden.tip['imagenet_script']['best_beta'])
    assert float(tip_search_grid(50, 20)[j]) == pytest.approx(
        golden.tip['imagenet_script']['best_alpha'])


def train_tip_f(golden, features, precision='fp32'):
    """Tip-Adapter-F on the batches the original drew, with the optimizer
    and schedule of the config; the keys after every step."""
    tip = golden.fitted(finetune=True, precision=precision) \
        if precision == 'fp32' else None
    if tip is None:
        tip = TipAdapter(alpha=10., beta=1., finetune=True, precision='fp16')
        tip.fit(
            FeatureSet(golden.fp16['pass_features'], golden.cache['labels'],
                       'train'), None, golden.fp16['clip_weights'].t())
    W = golden.W if precision == 'fp32' else golden.fp16['clip_weights'].t()
    optim = build_optim_wrapper(tip, dict(optimizer=OPTIMIZER))
    iters = len(golden.tip_f['batch_sizes'])
    # The config's CosineAnnealingLR(by_epoch, convert_to_iter_based).
    scheduler = CosineAnnealingLR.build_iter_from_epoch(
        optim, T_max=20, by_epoch=True, epoch_length=iters)
    keys, losses, lrs, logits = [tip.cache_keys.detach().clone()], [], [], []
    for epoch in range(20):
        start = 0
        for size in golden.tip_f['batch_sizes']:
            x = features[epoch, start:start + size]
            y = golden.tip_f['train_labels'][epoch, start:start + size]
            start += size
            lrs.append(optim.get_lr()['lr'][0])
            out = tip(x, W)
            loss = tip.loss(x, y, W)['loss']  # what the runner steps on
            optim.update_params(loss)
            scheduler.step()
            keys.append(tip.cache_keys.detach().clone())
            losses.append(loss.detach())
            logits.append(out.detach())
    return tip, torch.stack(keys), torch.stack(losses), lrs, logits


def test_tip_adapter_f_steps(golden):
    tip, keys, losses, lrs, logits = train_tip_f(
        golden, golden.tip_f['train_features'])
    assert torch.allclose(
        torch.tensor(lrs, dtype=torch.float64),
        golden.tip_f['lrs'],
        rtol=1e-12,
        atol=0)
    for step in range(81):
        assert rel_err(keys[step], golden.tip_f['weights'][step]) <= TOL, step
    assert rel_err(losses, golden.tip_f['losses']) <= TOL
    for got, expected in zip(logits, golden.tip_f['train_logits']):
        assert rel_err(got, expected) <= TOL
    # The validation-only protocol: the last keys, α/β searched on val.
    assert rel_err(tip.cache_keys, golden.tip_f['val_only']['weight']) <= TOL
    grid = tip.search_accuracy(golden.split('val'), golden.W)['correct']
    assert torch.equal(grid.double() * 100 / 70,
                       golden.tip_f['val_only']['val_acc_grid'])
    chosen = tip.search(golden.split('val'), golden.W)
    assert chosen['beta']['value'] == golden.tip_f['val_only']['best_beta']
    assert chosen['alpha']['value'] == golden.tip_f['val_only']['best_alpha']
    test = tip(golden.data['features']['test'], golden.W)
    assert rel_err(test, golden.tip_f['val_only']['test_logits']) <= TOL
    acc = 100. * float(
        (test.argmax(-1) == golden.data['labels']['test']).sum()) / 70
    assert acc == pytest.approx(golden.tip_f['val_only']['test_acc'])


def test_tip_adapter_f_per_epoch_and_test_selected_epoch(golden):
    """The original evaluates every epoch on test at (α, β) = (10, 1) and
    keeps the best test epoch; given that epoch's keys, mmprompt's search
    on val chooses what the original chose."""
    tip, keys, *_ = train_tip_f(golden, golden.tip_f['train_features'])
    test = golden.data['features']['test']
    for epoch in range(20):
        tip.cache_keys.data = keys[(epoch + 1) * 4].clone()
        tip.alpha.fill_(10.)
        tip.beta.fill_(1.)
        assert rel_err(
            tip(test, golden.W),
            golden.tip_f['test_logits_per_epoch'][epoch]) <= TOL, epoch
    best = golden.tip_f['best_epoch']  # 0-based
    assert golden.tip_f['test_acc_per_epoch'][best] == 80.
    assert rel_err(keys[(best + 1) * 4], golden.tip_f['best_weight']) <= TOL
    tip.cache_keys.data = keys[(best + 1) * 4].clone()
    chosen = tip.search(golden.split('val'), golden.W)
    assert chosen['beta']['value'] == pytest.approx(golden.tip_f['best_beta'])
    assert chosen['alpha']['value'] == pytest.approx(
        golden.tip_f['best_alpha'])
    assert rel_err(tip(test, golden.W),
                   golden.tip_f['final_test_logits']) <= TOL


def test_fp16_tip_adapter(golden):
    """The original in its own precision (fp16 keys, values and logits)."""
    h = golden.fp16
    tip = TipAdapter(alpha=10., beta=1., precision='fp16')
    tip.fit(
        FeatureSet(h['pass_features'], golden.cache['labels'], 'train'), None,
        h['clip_weights'].t())
    assert tip.cache_keys.dtype == torch.float16
    assert torch.equal(tip.cache_keys.t(), h['keys'])
    # The golden val/test features are normalised already (in fp16).
    W = h['clip_weights'].t()
    assert torch.equal(
        tip.logits(h['val_features'], W, 10., 1.), h['val_tip_logits_init'])
    val = FeatureSet(h['val_features'][None].float(),
                     golden.data['labels']['val'], 'val')
    grid = tip.search_accuracy(val, W)['correct']
    assert torch.equal(grid.double() * 100 / 70, h['val_acc_grid'])
    chosen = tip.search(val, W)
    # Rounding alone moves the choice: 13.074 here, 12.8245 in fp32.
    assert chosen['beta']['value'] == h['best_beta']
    assert chosen['alpha']['value'] == h['best_alpha']
    # Within one fp16 rounding (2e-3): fp16 agrees at fp16's level only.
    assert rel_err(
        tip.logits(h['test_features'], W, float(tip.alpha), float(tip.beta)),
        h['test_tip_logits_best']) <= 2e-3


def test_fp16_tip_adapter_f(golden):
    """fp16 keys under AdamW with fp16 moments, as the original: its keys
    after every step; exact AdamW is far from them."""
    h = golden.fp16
    tip, keys, losses, _, _ = train_tip_f(golden, h['train_features'], 'fp16')
    assert keys.dtype == torch.float16
    for step in range(81):
        assert rel_err(keys[step], h['weights'][step]) <= 2e-3, step
    assert rel_err(losses, h['losses']) <= 2e-3
    assert h['weight_decay_is_noop_in_fp16']
    # fp16's decoupled weight decay p·(1 − lr·0.01) rounds back to p.
    p = h['weights'][0]
    assert torch.equal(p * (1 - 0.001 * 0.01), p)
    fp32, *_ = train_tip_f(golden, h['train_features'].float())
    assert rel_err(fp32.cache_keys, h['weights'][-1]) > 1e-2


def test_config_of_the_golden_run(golden):
    """The golden run's config: search_scale [β, α] = [50, 50], 200 β and
    20 α values, init β 1, α 10 (TipAdapter's default grid)."""
    assert '"search_scale": [\n  50,\n  50\n ]' in golden.config
    tip = TipAdapter()
    assert tip.search_grid == dict(
        alpha_max=50., alpha_steps=20, beta_max=50., beta_steps=200)


def test_the_cache_term_matters(golden):
    """Without the cache, the logits are zero-shot CLIP's."""
    tip = golden.fitted()
    logits = tip(golden.data['features']['val'], golden.W)
    assert rel_err(logits, golden.tip['val_zeroshot_logits']) > 1e-2


@pytest.mark.parametrize('width', [32, 96])
def test_any_width(width):
    torch.manual_seed(0)
    text = F.normalize(torch.randn(5, width), dim=-1)
    labels = torch.arange(5).repeat(3)
    tip = MODELS.build(dict(type='TipAdapter', finetune=True))
    tip.fit(FeatureSet(torch.randn(4, 15, width), labels, 'train'), None, text)
    assert tip.cache_keys.shape == (15, width)
    loss = F.cross_entropy(
        tip(torch.randn(6, width), text),
        torch.arange(6) % 5)
    loss.backward()
    assert tip.cache_keys.grad.shape == (15, width)


def test_bad_arguments():
    with pytest.raises(ValueError, match="precision must be one of .*'bf16'"):
        TipAdapter(precision='bf16')
    with pytest.raises(ValueError, match='alpha must be a number >= 0'):
        TipAdapter(alpha=-1)
    with pytest.raises(ValueError, match='search must be None or a dict'):
        TipAdapter(search=dict(alpha_max=5))
    with pytest.raises(ValueError, match=r"search\['beta_steps'\]"):
        TipAdapter(
            search=dict(
                alpha_max=5., alpha_steps=3, beta_max=5., beta_steps=0))
    tip = TipAdapter()
    with pytest.raises(RuntimeError, match='no cache'):
        tip(torch.randn(2, 8), torch.randn(3, 8))
    tip.fit(
        FeatureSet(torch.randn(1, 4, 8), torch.tensor([0, 1, 2, 0]), 'train'),
        None, torch.randn(3, 8))
    with pytest.raises(ValueError, match='built for 3 classes and 4'):
        tip(torch.randn(2, 8), torch.randn(4, 8))


def test_state_dict_round_trip():
    text = F.normalize(torch.randn(3, 8), dim=-1)
    tip = TipAdapter(alpha=2., beta=3., search=None)
    tip.fit(
        FeatureSet(torch.randn(2, 6, 8),
                   torch.arange(6) % 3, 'train'), None, text)
    tip.alpha.fill_(4.5)
    fresh = TipAdapter(search=None)
    fresh.load_state_dict(tip.state_dict())
    x = torch.randn(5, 8)
    assert torch.equal(fresh(x, text), tip(x, text))
    assert float(fresh.alpha) == 4.5
