from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from blockzoo.regularization import (
    MaxNorm,
    MinMaxNorm,
    NonNeg,
    UnitNorm,
    attach_constraint,
    attach_spectral_norm,
    attach_weight_norm,
    list_regularizers,
)


def unit_norms(w: torch.Tensor, dim: tuple[int, ...] | None) -> torch.Tensor:
    dims = dim if dim is not None else tuple(range(1, w.dim()))
    return torch.linalg.vector_norm(w, dim=dims)


def holds(constraint: object, w: torch.Tensor) -> bool:
    """The constraint's property, checked from its definition, not by projecting again."""
    tol = 1e-5
    if isinstance(constraint, NonNeg):
        return bool((w >= 0).all())
    norms = unit_norms(w, constraint.dim)  # type: ignore[attr-defined]
    if isinstance(constraint, MaxNorm):
        return bool((norms <= constraint.max_value * (1 + tol) + tol).all())
    if isinstance(constraint, UnitNorm):
        return bool(((norms - 1).abs() <= 1e-4).all())
    if isinstance(constraint, MinMaxNorm):
        return bool(
            (
                (norms >= constraint.min_value * (1 - tol) - tol) & (norms <= constraint.max_value * (1 + tol) + tol)
            ).all()
        )
    raise AssertionError(constraint)


constraints = st.one_of(
    st.builds(MaxNorm, st.floats(0.1, 3)),
    st.builds(UnitNorm),
    st.builds(NonNeg),
    st.floats(0.1, 2).flatmap(lambda lo: st.builds(MinMaxNorm, st.just(lo), st.floats(lo, 4), st.just(1.0))),
)


@given(
    constraint=constraints,
    seed=st.integers(0, 2**31),
    lr=st.floats(0.01, 10),
    mode=st.sampled_from(["project", "parametrize"]),
)
def test_after_a_step_every_constrained_parameter_holds(constraint, seed, lr, mode) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    handle = attach_constraint(model, constraint, optimizer=opt if mode == "project" else None, mode=mode)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 3, 6, 6)).square().sum().backward()
        opt.step()
    for name in ("0.weight", "3.weight"):
        w = model.get_parameter(name) if mode == "project" else model.get_submodule(name[0]).weight
        assert holds(constraint, w.detach()), (name, constraint)
    handle.remove()


def test_projections_follow_keras() -> None:
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    torch.testing.assert_close(MaxNorm(1.0)(w), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))
    torch.testing.assert_close(torch.linalg.vector_norm(MaxNorm(1.0, dim=0)(w), dim=0), torch.ones(2))
    torch.testing.assert_close(UnitNorm()(w), torch.tensor([[0.6, 0.8], [0.6, 0.8]]))
    half = MinMaxNorm(1.0, 2.0, rate=0.5)(torch.tensor([[0.3, 0.4]]))  # norm 0.5 -> 0.5 * 1 + 0.5 * 0.5 = 0.75
    torch.testing.assert_close(torch.linalg.vector_norm(half), torch.tensor(0.75))
    conv = torch.randn(4, 3, 3, 3) * 5
    torch.testing.assert_close(
        torch.linalg.vector_norm(MaxNorm(1.0)(conv), dim=(1, 2, 3)), torch.ones(4), atol=1e-5, rtol=0
    )


def test_parametrize_mode_and_remove_give_back_the_parameter() -> None:
    model = nn.Linear(4, 3)
    weight = model.weight
    x = torch.randn(2, 4)
    before = model(x)
    handle = attach_constraint(model, NonNeg(), mode="parametrize")
    assert "parametrizations.weight.original" in model.state_dict()
    assert (model.weight >= 0).all()
    handle.remove()
    assert model.weight is weight
    assert torch.equal(model(x), before)
    assert list(model.state_dict()) == ["weight", "bias"]


def test_spectral_and_weight_norm_by_role_and_pattern() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(5, 8)
    before = model(x)
    originals = [model[0].weight, model[2].weight]
    sn = attach_spectral_norm(model, include="0.*")
    for _ in range(20):  # power iterations converge in training mode
        model(x)
    assert torch.linalg.matrix_norm(model[0].weight, ord=2).item() == pytest.approx(1.0, rel=1e-3)
    sn.remove()
    assert model[0].weight is originals[0]
    torch.testing.assert_close(model(x), before)
    wn = attach_weight_norm(model)
    torch.testing.assert_close(model(x), before)
    assert {n for n, _ in model.named_parameters()} >= {
        "0.parametrizations.weight.original0",
        "2.parametrizations.weight.original1",
    }
    wn.remove()
    assert [model[0].weight, model[2].weight] == originals
    torch.testing.assert_close(model(x), before)


def test_constraint_bad_input() -> None:
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"needs the optimizer.*bind_optimizer.*Received: optimizer=None"):
        attach_constraint(model, MaxNorm())
    with pytest.raises(ValueError, match="Received: max_value=-1"):
        MaxNorm(-1)
    with pytest.raises(ValueError, match=r"max_value must be a number >= 2.*Received: max_value=1"):
        MinMaxNorm(2.0, 1.0)
    with pytest.raises(ValueError, match="Received: rate=2"):
        MinMaxNorm(rate=2)
    with pytest.raises(TypeError, match="Received: dim='0'"):
        MaxNorm(dim="0")  # type: ignore[arg-type]
    other = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=r"optimizer does not update \['weight'\]"):
        attach_constraint(model, MaxNorm(), optimizer=other)
    with pytest.raises(ValueError, match="Received: mode='clip'"):
        attach_constraint(model, MaxNorm(), optimizer=opt, mode="clip")  # type: ignore[arg-type]
    attach_constraint(model, MaxNorm(), optimizer=opt)
    with pytest.raises(ValueError, match="already attached to weight"):
        attach_constraint(model, MaxNorm(1.0), mode="parametrize")
    assert "parametrizations" not in dict(model.named_modules())  # the refused one was undone
    assert [row.kind for row in list_regularizers(model)] == ["constraint", "optimizer"]  # opt was bound
