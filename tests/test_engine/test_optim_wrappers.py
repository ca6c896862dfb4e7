# Copyright (c) mmprompt contributors. All rights reserved.
"""ProGrad's optimizer wrappers: the original's projected gradient and SGD
steps (``../shared/golden/prograd``), the rule itself, mixed precision,
gradient accumulation and what they refuse.

The two-process DDP run is ``tests/test_reliability/test_prograd_ddp.py``.
"""
from unittest import mock

import pytest
import torch
from mmengine.logging import MessageHub
from prograd_golden import (ARCHS, CASES, VARIANTS, Golden, assert_rel,
                            train_step)

from mmprompt.engine import (AMP_OPTIM_WRAPPERS, ProGradAmpOptimWrapper,
                             ProGradOptimWrapper, prograd_project)
from mmprompt.registry import OPTIM_WRAPPERS


@pytest.fixture(
    params=[(a, v) for a in ARCHS for v in VARIANTS],
    ids=lambda p: f'{p[0]}-{p[1]}')
def golden(request, golden_dir):
    return Golden(golden_dir, *request.param)


def _record_applied(wrapper, param) -> list:
    """The gradient the optimizer steps on, at each step."""
    applied, step = [], wrapper.optimizer.step

    def recording(*args, **kwargs):
        applied.append(param.grad.detach().clone())
        return step(*args, **kwargs)

    wrapper.optimizer.step = recording
    return applied


@pytest.mark.parametrize('case', CASES, ids=['conflict', 'aligned'])
def test_reproduces_the_originals_steps(golden, case):
    """From the original's checkpoint: its projected (or kept) gradient,
    cosine and decision, and its parameters after one step at the warm-up
    lr and after two steps at lr 0.002 (gradients and projection recomputed
    at step 2), SGD with momentum and weight decay on a fresh optimizer."""
    step, grads = golden.load(f'step{case}.pt'), golden.load(f'grads{case}.pt')
    samples = golden.samples(case)
    model = golden.model()
    ctx = model.head.prompt_learner.ctx
    assert_rel(ctx, step['params_before']['ctx'], 'params before')
    wrapper = golden.wrapper(model, step['lr_first_iteration'])
    train_step(model, wrapper, golden.images, samples)
    assert_rel(ctx, step['params_after_first_iteration']['ctx'],
               'params after the first iteration (lr 1e-5)')

    model = golden.model()
    ctx = model.head.prompt_learner.ctx
    wrapper = golden.wrapper(model, step['lr'])
    applied = _record_applied(wrapper, ctx)
    for i in (1, 2):
        train_step(model, wrapper, golden.images, samples)
        (cos, projected), = wrapper.last_projection
        assert projected is step[f'projected_step{i}'] is (case == '')
        assert cos == pytest.approx(step[f'cos_step{i}'], rel=1e-5)
        assert_rel(ctx, step[f'params_after_step{i}']['ctx'],
                   f'params after step {i}')
    assert_rel(applied[0], grads['applied']['ctx'], 'projected gradient')
    assert_rel(applied[0], step['applied_grad_step1']['ctx'],
               'gradient of step 1')
    assert wrapper.last_projection and grads['projected'] is (case == '')
    assert ctx.grad is None  # zeroed after the step


@pytest.mark.parametrize('case', CASES, ids=['conflict', 'aligned'])
def test_step_two_gradient_at_the_originals_parameters(golden, case):
    """Step 2's projected gradient, computed where the original computed
    it (its parameters and momentum after step 1): the gradients of one
    point, not the drift of two steps of fp32 rounding.

    Where the gradients nearly oppose (cos -0.96 in vit template-init16),
    the projected gradient is the quarter of ``g_ce`` left after removing
    the rest, so the 3e-6 relative rounding of the gradients becomes 1e-5
    of it (the plain 77-token encoder gives 1.1e-5, the prefix-cached one
    1.01e-5): it is held to 1e-5 of ``g_ce``, from which it is computed,
    and 2e-5 of itself."""
    step = golden.load(f'step{case}.pt')
    model = golden.model()
    ctx = model.head.prompt_learner.ctx
    wrapper = golden.wrapper(model, step['lr'])
    with torch.no_grad():
        ctx.copy_(step['params_after_step1']['ctx'])
    wrapper.optimizer.state[ctx]['momentum_buffer'] = (
        step['applied_grad_step1']['ctx'] +
        step['weight_decay'] * step['params_before']['ctx']).clone()
    applied = _record_applied(wrapper, ctx)
    samples = golden.samples(case)
    g_ce, = torch.autograd.grad(
        model(golden.images, samples, mode='loss')['loss_ce'], ctx)
    train_step(model, wrapper, golden.images, samples)
    expected = step['applied_grad_step2']['ctx']
    assert_rel(applied[0], expected, 'projected gradient of step 2', 2e-5)
    error = (applied[0] - expected).abs().max() / g_ce.abs().max()
    assert error <= 1e-5, f'{error:.2e} of g_ce'
    assert_rel(ctx, step['params_after_step2']['ctx'], 'params after step 2')


def test_the_rule():
    # Conflict (strictly negative): the component along g_kl goes, all of
    # it with λ=1, a share λ otherwise.
    g_ce, g_kl = torch.tensor([1., -2.]), torch.tensor([0., 4.])
    g, cos, projected = prograd_project(g_ce, g_kl)
    assert projected and cos < 0
    torch.testing.assert_close(g, torch.tensor([1., 0.]))
    g, _, _ = prograd_project(g_ce, g_kl, 0.8)
    torch.testing.assert_close(g, torch.tensor([1., -0.4]))
    # Orthogonal or aligned: kept.
    for other in (torch.tensor([2., 1.]), torch.tensor([1., -1.])):
        g, _, projected = prograd_project(g_ce, other)
        assert not projected and g is g_ce
    # No KL gradient: nothing to keep away from (the original's 0/0).
    g, _, projected = prograd_project(g_ce, torch.zeros(2))
    assert not projected and g is g_ce
    # One projection over the whole flattened tensor: rows that conflict on
    # their own are kept when the tensor as a whole does not conflict
    # (class-specific contexts are one tensor).
    g_ce = torch.tensor([[1., 0.], [0., 1.]])
    g_kl = torch.tensor([[-1., 0.], [0., 5.]])
    g, _, projected = prograd_project(g_ce, g_kl)
    assert not projected and torch.equal(g, g_ce)


def _quadratic(params, target_ce, target_kl):
    # per row: (rows, 3)
    return dict(
        loss_ce=(params - target_ce)**2, loss_kl=(params - target_kl)**2)


def test_accumulated_gradients_are_summed_per_term_before_projecting():
    """accumulative_counts=2 on two halves equals one step on the whole:
    each term's gradients are accumulated, then projected once."""
    targets = torch.randn(4, 3), torch.randn(4, 3)

    def run(halves, counts):
        p = torch.nn.Parameter(torch.zeros(3))
        wrapper = ProGradOptimWrapper(
            optimizer=torch.optim.SGD([p], lr=0.1, momentum=0.9),
            accumulative_counts=counts)
        wrapper.initialize_count_status(torch.nn.Linear(1, 1), 0, 2 * counts)
        for _ in range(2):
            for rows in halves:
                wrapper.update_params({
                    k: v.sum(1).mean()
                    for k, v in _quadratic(p, targets[0][rows], targets[1]
                                           [rows]).items()
                })
        return p.detach(), wrapper

    whole, _ = run([slice(0, 4)], 1)
    accumulated, wrapper = run([slice(0, 2), slice(2, 4)], 2)
    torch.testing.assert_close(accumulated, whole)
    assert wrapper.inner_count == 4


def test_cosine_and_projections_are_logged():
    hub = MessageHub.get_current_instance()
    p = torch.nn.Parameter(torch.zeros(2))
    wrapper = ProGradOptimWrapper(optimizer=torch.optim.SGD([p], lr=1.0))
    wrapper.update_params(dict(loss_ce=p[1] - p[0], loss_kl=-p[1]))
    assert hub.get_scalar('train/prograd_projected').current() == 1
    assert hub.get_scalar('train/prograd_cos').current() == pytest.approx(
        -2**-0.5)


def _amp_wrapper(params, **kwargs) -> ProGradAmpOptimWrapper:
    """mmengine's AmpOptimWrapper wants a GPU; on a CPU the same wrapper
    with torch's CPU loss scaler."""
    with mock.patch(
            'mmengine.optim.optimizer.amp_optimizer_wrapper.'
            'is_cuda_available',
            return_value=True):
        wrapper = ProGradAmpOptimWrapper(
            optimizer=torch.optim.SGD(params, lr=0.002, momentum=0.9),
            **kwargs)
    wrapper.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.**12)
    return wrapper


def test_mixed_precision_scales_both_losses_and_projects_alike(golden_dir):
    """Under the loss scaler the projection of the scaled gradients is the
    scaled projection: the AMP wrapper steps as the plain one."""
    golden = Golden(golden_dir, 'vit', 'prograd_template-init16')
    steps = golden.load('step.pt')
    model = golden.model()
    ctx = model.head.prompt_learner.ctx
    wrapper = _amp_wrapper([ctx], lambda_=golden.options['lambda'])
    wrapper.optimizer = golden.wrapper(model, steps['lr']).optimizer
    # Scaling alone (autocast's bf16 on a CPU would change the forward).
    losses = model(golden.images, golden.samples(), mode='loss')
    wrapper.update_params(model.parse_losses(losses)[0])
    assert wrapper.last_projection[0][1] is True
    assert_rel(ctx, steps['params_after_step1']['ctx'], 'AMP step')
    assert wrapper.loss_scaler.get_scale() == 2.**12


def test_an_overflow_in_either_gradient_skips_the_step():
    p = torch.nn.Parameter(torch.ones(2))
    wrapper = _amp_wrapper([p])
    # g_ce finite and aligned with... nothing: g_kl overflows.
    wrapper.update_params(
        dict(loss_ce=p.sum(), loss_kl=p[0] * torch.tensor(float('inf'))))
    torch.testing.assert_close(p.detach(), torch.ones(2))  # skipped
    assert wrapper.loss_scaler.get_scale() == 2.**11  # backed off
    wrapper.update_params(dict(loss_ce=p.sum(), loss_kl=p.sum()))
    assert not torch.equal(p.detach(), torch.ones(2))


def test_registered_and_amp_variants():
    assert OPTIM_WRAPPERS.get('ProGradOptimWrapper') is ProGradOptimWrapper
    assert OPTIM_WRAPPERS.get(
        'ProGradAmpOptimWrapper') is ProGradAmpOptimWrapper
    assert AMP_OPTIM_WRAPPERS['ProGradOptimWrapper'] == \
        'ProGradAmpOptimWrapper'
    assert AMP_OPTIM_WRAPPERS['OptimWrapper'] == 'AmpOptimWrapper'


def test_refusals_name_what_to_do():
    p = torch.nn.Parameter(torch.ones(2))
    wrapper = ProGradOptimWrapper(optimizer=torch.optim.SGD([p], lr=0.1))
    with pytest.raises(
            TypeError,
            match=r"needs both terms, got Tensor.*"
            r"type='ProGradHead'"):
        wrapper.update_params(p.sum())
    with pytest.raises(TypeError, match=r"got dict\['loss'\]"):
        wrapper.update_params(dict(loss=p.sum()))
    with pytest.raises(TypeError, match='update_params'):
        wrapper.backward(p.sum())
    for bad in (1.5, -0.1, True, '1'):
        with pytest.raises(
                ValueError,
                match=f'must be in \\[0, 1\\], got '
                f'{bad!r}'.replace('.', r'\.')):
            ProGradOptimWrapper(
                optimizer=torch.optim.SGD([p], lr=0.1), lambda_=bad)
