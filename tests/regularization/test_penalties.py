from __future__ import annotations

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
    MaxNorm,
    NonNeg,
    Orthogonal,
    attach_activity_penalty,
    attach_constraint,
    attach_grad_clip,
    attach_grad_noise,
    attach_penalty,
    attach_spectral_norm,
    attach_weight_norm,
    list_regularizers,
    regularization_loss,
    step_regularizers,
)

factors = st.floats(0, 10, allow_nan=False)
shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


def penalties() -> st.SearchStrategy:
    return st.one_of(
        factors.map(L1),
        factors.map(L2),
        st.tuples(factors, factors).map(lambda f: L1L2(*f)),
        st.tuples(factors, st.sampled_from(["rows", "columns"])).map(lambda f: Orthogonal(*f)),
    )


@given(penalty=penalties(), shape=shapes, seed=st.integers(0, 2**31))
def test_penalties_are_non_negative_and_zero_at_zero(penalty, shape, seed) -> None:  # type: ignore[no-untyped-def]
    if isinstance(penalty, Orthogonal) and len(shape) < 2:
        shape = (*shape, 3)
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert penalty(w).item() >= 0
    assert penalty(torch.zeros(shape, dtype=torch.float64)).item() == 0


def test_penalty_values_follow_their_formulas() -> None:
    w = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    assert L1(0.1)(w).item() == pytest.approx(0.1 * 3.5)
    assert L2(0.1)(w).item() == pytest.approx(0.1 * 5.25)
    assert L1L2(0.1, 0.2)(w).item() == pytest.approx(0.35 + 0.2 * 5.25)
    # rows [1, -2] and [0.5, 0]: cosine -1/sqrt(5); the mean |cosine| over the one pair.
    assert Orthogonal(2.0)(w).item() == pytest.approx(2.0 / 5**0.5)
    # columns [1, 0.5] and [-2, 0]: cosine -2 / (sqrt(1.25) * 2)
    assert Orthogonal(1.0, mode="columns")(w).item() == pytest.approx(1 / 1.25**0.5)
    assert Orthogonal(1.0)(torch.linalg.qr(torch.randn(5, 5)).Q).item() == pytest.approx(0, abs=1e-6)
    assert repr(L1L2(0.1, 0.2)) == "L1L2(l1=0.1, l2=0.2)"


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5))


def grads(m: nn.Module, x: torch.Tensor, *, with_loss: bool = False) -> dict[str, torch.Tensor]:
    m.zero_grad()
    loss = m(x).square().mean()
    if with_loss:
        loss = loss + regularization_loss(m)
    loss.backward()
    return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}


def user_penalty(w: torch.Tensor) -> torch.Tensor:
    return 0.3 * (w**4).sum()


@given(
    penalty=st.one_of(penalties(), st.just(user_penalty)),
    seed=st.integers(0, 2**31),
    roles=st.sampled_from([("weight",), ("weight", "bias"), None]),
)
def test_grad_mode_gives_the_gradients_of_loss_mode(penalty, seed, roles) -> None:  # type: ignore[no-untyped-def]
    if isinstance(penalty, Orthogonal) and roles != ("weight",):
        roles = ("weight",)  # an orthogonality penalty needs matrices
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    loss_model, grad_model = model(), model()
    with torch.no_grad():
        for p in [*loss_model.parameters(), *grad_model.parameters()]:
            p.normal_(generator=torch.Generator().manual_seed(seed))
    a = attach_penalty(loss_model, penalty, roles=roles, mode="loss")
    expected = grads(loss_model, x, with_loss=True)
    a.remove()
    b = attach_penalty(grad_model, penalty, roles=roles, mode="grad")
    got = grads(grad_model, x)
    b.remove()
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)


ATTACH = {
    "l2 grad": lambda m: attach_penalty(m, L2(0.5), mode="grad"),
    "l1 loss": lambda m: attach_penalty(m, L1(0.5), roles="bias"),
    "orthogonal loss": lambda m: attach_penalty(m, Orthogonal(0.1), include="0.*"),
    "activity": lambda m: attach_activity_penalty(m, L1(0.1), include="1"),
    "maxnorm parametrize": lambda m: attach_constraint(m, MaxNorm(0.5), mode="parametrize", include="3.*"),
    "nonneg project": lambda m: attach_constraint(m, NonNeg(), optimizer=torch.optim.SGD(m.parameters(), lr=0.1)),
    "grad clip": lambda m: attach_grad_clip(m, max_value=1e-3),
    "grad noise": lambda m: attach_grad_noise(m, 1.0),
    "spectral norm": lambda m: attach_spectral_norm(m, include="3.*"),
    "weight norm": lambda m: attach_weight_norm(m, include="0.*"),
}


@given(kinds=st.lists(st.sampled_from(sorted(ATTACH)), unique=True, max_size=5), seed=st.integers(0, 2**31))
def test_remove_restores_outputs_and_gradients_bit_identically(kinds, seed) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    reference = model()
    ref_out = reference(x)
    ref_grads = grads(reference, x)
    hooked = model()
    handles = [ATTACH[kind](hooked) for kind in kinds]
    grads(hooked, x, with_loss=True)
    for h in reversed(handles):
        h.remove()
        h.remove()  # idempotent
    assert torch.equal(hooked(x), ref_out)
    assert [n for n, _ in hooked.named_parameters()] == [n for n, _ in reference.named_parameters()]
    for name, g in grads(hooked, x).items():
        assert torch.equal(g, ref_grads[name]), name
    assert list_regularizers(hooked) == []
    assert regularization_loss(hooked).item() == 0


def test_activity_penalty_is_divided_by_batch_and_cleared_each_forward() -> None:
    m = model()
    attach_activity_penalty(m, L1(0.1), include="3")
    x = torch.randn(4, 3, 6, 6)
    out = m(x)
    torch.testing.assert_close(regularization_loss(m), 0.1 * out.abs().sum() / 4)
    m(x[:2])
    out2 = m(x[:2])  # two forwards: only the last counts
    torch.testing.assert_close(regularization_loss(m), 0.1 * out2.abs().sum() / 2)
    loss = regularization_loss(m)
    loss.backward()
    assert m[3].weight.grad is not None


def test_schedules_follow_the_step() -> None:
    penalty = L2(lambda step: 0.1 * step)
    m = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(1.0)
    attach_penalty(m, penalty)
    values = []
    for _ in range(3):
        values.append(regularization_loss(m).item())
        assert regularization_loss(m).item() == values[-1]  # reading it twice changes nothing
        step_regularizers(m)
    assert values == pytest.approx([0.0, 0.2, 0.4])
    bad = nn.Linear(2, 1)
    attach_penalty(bad, L1(lambda step: -1))
    with pytest.raises(ValueError, match=r"factor\(0\) must be a finite number >= 0\. Received: factor\(0\)=-1"):
        regularization_loss(bad)


def test_list_regularizers_shows_what_is_where() -> None:
    m = model()
    attach_penalty(m, L2(1e-4))
    attach_penalty(m, L1(1e-5), roles="bias", mode="grad")
    text = str(list_regularizers(m))
    assert text.splitlines()[0].split() == ["kind", "what", "mode", "where"]
    assert "L2(factor=0.0001)  loss  0.weight, 3.weight" in text
    assert "L1(factor=1e-05)   grad  0.bias, 3.bias" in text


def test_bad_input() -> None:
    m = model()
    with pytest.raises(
        ValueError, match=r"factor must be a finite number >= 0 or a callable of the step\. Received: factor=-0\.1"
    ):
        L2(-0.1)
    with pytest.raises(ValueError, match="Received: l1=nan"):
        L1L2(l1=float("nan"))
    with pytest.raises(ValueError, match="Received: mode='diag'"):
        Orthogonal(mode="diag")  # type: ignore[arg-type]
    with pytest.raises(blockzoo.UnknownNameError, match="weight"):
        attach_penalty(m, L2(), roles="weights")
    with pytest.raises(ValueError, match=r"include glob 'decoder\.\*' matches no parameter of Sequential"):
        attach_penalty(m, L2(), include="decoder.*")
    with pytest.raises(ValueError, match="pick no trainable parameter"):
        attach_penalty(m, L2(), roles="norm")
    with pytest.raises(ValueError, match="Received: mode='both'"):
        attach_penalty(m, L2(), mode="both")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Received: penalty=0\.1"):
        attach_penalty(m, 0.1)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"include glob 'head' matches no sub-module of Sequential\. The names look like '0', '1', '2'\. Received: include='head'",
    ):
        attach_activity_penalty(m, L1(), include="head")
    first = attach_penalty(m, L2(0.1))
    with pytest.raises(ValueError, match=r"L2\(factor=0.2\) is already attached to 0.weight"):
        attach_penalty(m, L2(0.2), mode="grad")
    assert len(list_regularizers(m)) == 1  # the refused one left nothing behind
    attach_penalty(m, L1(0.1))  # another kind is fine
    first.remove()
    attach_penalty(m, L2(0.2))  # and after remove() the same kind again


def test_frozen_parameters_are_not_penalised() -> None:
    m = model()
    m[0].requires_grad_(False)
    handle = attach_penalty(m, L2(1.0))
    assert handle.targets == ["3.weight"]


def test_activity_penalty_survives_later_in_place_layers() -> None:
    # The norm's output is modified in place by the block's activation; the penalty must still backprop.
    block = blockzoo.ConvNormAct(3, 4)
    attach_activity_penalty(block, L1(1.0), include="norm")
    x = torch.randn(2, 3, 5, 5)
    block(x)
    loss = regularization_loss(block)
    loss.backward()
    pre_act = block.norm(block.conv(x))  # what the hook saw, before the in-place ReLU
    torch.testing.assert_close(loss, pre_act.abs().sum() / 2)
    assert block.conv.weight.grad is not None
