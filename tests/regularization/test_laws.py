"""Laws of the penalties and hooks, with bounds sized from their sampling error, and their CUDA cases."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo.regularization import (
    L1,
    L1L2,
    L2,
    NonNeg,
    Orthogonal,
    Penalty,
    attach_activity_penalty,
    attach_constraint,
    attach_grad_noise,
    attach_penalty,
    regularization_loss,
)
from support import DEVICES

positive = st.floats(1e-3, 10, allow_nan=False)
shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


def check_penalty_laws(penalty: Penalty, weight: torch.Tensor, factor: float) -> None:
    """The laws every built-in penalty with a positive factor obeys on a nonzero weight.

    Non-negative, zero at zero, positive away from zero (orthogonality penalties: positive on a
    matrix with correlated rows), and linear in the factor: ``type(penalty)`` rebuilt with twice
    the factor gives twice the value.
    """
    value = penalty(weight)
    assert value.dim() == 0
    assert value.item() >= 0
    assert penalty(torch.zeros_like(weight)).item() == 0
    probe = (
        weight if not isinstance(penalty, Orthogonal) else weight + weight.flatten(1)[:1].reshape(1, *weight.shape[1:])
    )
    assert penalty(probe).item() > 0, f"{penalty!r} is 0 on a weight it should penalise"
    doubled = rebuild(penalty, 2 * factor)
    torch.testing.assert_close(doubled(probe), 2 * penalty(probe), rtol=1e-9, atol=0)


def rebuild(penalty: Penalty, factor: float) -> Penalty:
    if isinstance(penalty, L1L2):
        return L1L2(factor, factor)
    if isinstance(penalty, Orthogonal):
        return Orthogonal(factor, mode=penalty.mode)
    return type(penalty)(factor)  # type: ignore[call-arg]


@given(
    kind=st.sampled_from(["l1", "l2", "l1l2", "rows", "columns"]),
    factor=positive,
    shape=shapes,
    seed=st.integers(0, 2**31),
)
def test_penalty_laws_hold(kind, factor, shape, seed) -> None:  # type: ignore[no-untyped-def]
    penalty = {
        "l1": lambda: L1(factor),
        "l2": lambda: L2(factor),
        "l1l2": lambda: L1L2(factor, factor),
        "rows": lambda: Orthogonal(factor),
        "columns": lambda: Orthogonal(factor, mode="columns"),
    }[kind]()
    if isinstance(penalty, Orthogonal):
        shape = (
            (max(shape[0], 2), *shape[1:], 2) if len(shape) < 2 else (max(shape[0], 2), max(shape[1], 2), *shape[2:])
        )
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    check_penalty_laws(penalty, w, factor)


class _Zero(L2):
    def value(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.new_zeros(())


class _Half(L2):
    """Forgets the factor above 1: not linear in it."""

    def value(self, weight: torch.Tensor) -> torch.Tensor:
        return min(float(self.factor), 1.0) * weight.square().sum()  # type: ignore[arg-type]


@pytest.mark.parametrize("broken", [_Zero(0.5), _Half(0.8)])
def test_the_laws_refuse_a_broken_penalty(broken: Penalty) -> None:
    w = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(AssertionError):
        check_penalty_laws(broken, w, float(broken.factor))  # type: ignore[attr-defined]


def test_grad_noise_has_the_scheduled_std_and_zero_mean() -> None:
    # 64 x 256 = 16384 noise values. The sample std of n normal values has a relative standard error
    # of 1 / sqrt(2n) (0.55% here) and the mean a standard error of std / sqrt(n); 6 standard errors
    # bound a failure on correct code at about 2e-9 per check, for any seed.
    model = nn.Linear(256, 64, bias=False)
    std = 0.5
    attach_grad_noise(model, std)
    model(torch.zeros(1, 256)).sum().backward()  # the true gradient is zero: all of it is noise
    noise = model.weight.grad.flatten().double()
    n = noise.numel()
    assert abs(noise.std().item() / std - 1) < 6 / math.sqrt(2 * n)
    assert abs(noise.mean().item()) < 6 * std / math.sqrt(n)


def test_compiled_forward_gives_the_eager_gradients() -> None:
    torch._dynamo.reset()
    eager = blockzoo.create_model("resnet20")
    compiled_model = copy.deepcopy(eager)  # attachments made after the copy: each model has its own
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    grads = []
    for model, run in (
        (eager, eager),
        (compiled_model, torch.compile(compiled_model, backend="eager", fullgraph=True)),
    ):
        attach_penalty(model, L2(1e-2), mode="grad")
        attach_penalty(model, L1(1e-3), roles="bias")
        attach_activity_penalty(model, L2(1e-3), include="features.stage1")
        (run(x).sum() + regularization_loss(model)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        assert g is not None, name
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_hooks_on_a_device(device: str) -> None:
    torch.manual_seed(0)
    loss_model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5)).to(device)
    grad_model = copy.deepcopy(loss_model)
    x = torch.randn(2, 3, 6, 6, device=device)
    attach_penalty(loss_model, L2(0.5))
    attach_penalty(grad_model, L2(0.5), mode="grad")
    attach_activity_penalty(loss_model, L1(0.1), include="1")
    attach_activity_penalty(grad_model, L1(0.1), include="1")
    for m in (loss_model, grad_model):
        (m(x).square().mean() + regularization_loss(m)).backward()
    for (name, a), b in zip(loss_model.named_parameters(), grad_model.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)
    assert regularization_loss(loss_model).device.type == device
    opt = torch.optim.SGD(grad_model.parameters(), lr=1.0)
    attach_constraint(grad_model, NonNeg(), optimizer=opt)
    opt.step()
    assert all(bool((p >= 0).all()) for n, p in grad_model.named_parameters() if n.endswith("weight"))
    twin = copy.deepcopy(grad_model)
    assert next(twin.parameters()).device.type == device
    twin.zero_grad()
    twin(x).sum().backward()  # the copy's gradient hook runs on the device
    assert all(p.grad is not None for p in twin.parameters())
