"""Attachments live on the model: copies behave as the original, reading the loss changes nothing."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo.regularization import (
    L1,
    L2,
    MaxNorm,
    NonNeg,
    attach_activity_penalty,
    attach_constraint,
    attach_grad_clip,
    attach_grad_noise,
    attach_penalty,
    attach_spectral_norm,
    attach_stochastic_depth,
    attach_weight_norm,
    bind_optimizer,
    list_regularizers,
    regularization_loss,
    step_regularizers,
)


def rising(step: int) -> float:
    """A schedule that pickles (a module-level function)."""
    return 0.05 * (step + 1)


ATTACH = {
    "l2 loss scheduled": lambda m: attach_penalty(m, L2(rising)),
    "l2 grad": lambda m: attach_penalty(m, L2(0.5), roles="bias", mode="grad"),
    "l1 activity": lambda m: attach_activity_penalty(m, L1(0.1), include="1"),
    "maxnorm parametrize": lambda m: attach_constraint(m, MaxNorm(0.5), mode="parametrize", include="3.*"),
    "nonneg project": lambda m: attach_constraint(m, NonNeg(), include="0.*"),  # the bound optimizer drives it
    "grad clip": lambda m: attach_grad_clip(m, max_norm=0.1, include="3.*"),
    "grad noise scheduled": lambda m: attach_grad_noise(
        m, rising, include="0.*", generator=torch.Generator().manual_seed(0)
    ),
    "spectral norm": lambda m: attach_spectral_norm(m, include="3.*"),
    "weight norm": lambda m: attach_weight_norm(m, include="0.*"),
}
# torch refuses to pickle a module with a parametrization (its state_dict is the way to save one).
PARAMETRIZED = {"maxnorm parametrize", "spectral norm", "weight norm"}
# Attached before the optimizer is made (they replace parameters), the rest after it is bound.
BEFORE_OPTIMIZER = PARAMETRIZED


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5))


def build(
    kinds: list[str],
) -> tuple[nn.Module, torch.optim.Optimizer, list[blockzoo.regularization.RegularizationHandle]]:
    m = model()
    handles = [ATTACH[k](m) for k in kinds if k in BEFORE_OPTIMIZER]
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    handles.append(bind_optimizer(m, opt))
    handles += [ATTACH[k](m) for k in kinds if k not in BEFORE_OPTIMIZER]
    return m, opt, handles


def train_step(m: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor) -> torch.Tensor:
    opt.zero_grad()
    loss = m(x).square().mean() + regularization_loss(m)
    loss.backward()
    opt.step()
    return loss.detach()


def rows(m: nn.Module) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(r.kind, r.what, r.mode, r.targets) for r in list_regularizers(m) if r.kind != "optimizer"]


def state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@given(kinds=st.lists(st.sampled_from(sorted(ATTACH)), unique=True, min_size=1, max_size=5), seed=st.integers(0, 2**31))
def test_a_copy_behaves_exactly_as_the_original(how, kinds, seed) -> None:  # type: ignore[no-untyped-def]
    if how == "pickle" and PARAMETRIZED & set(kinds):
        kinds = [k for k in kinds if k not in PARAMETRIZED] or ["l2 loss scheduled"]
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    original, opt, handles = build(kinds)
    for _ in range(2):
        train_step(original, opt, x)
    clone = copy.deepcopy(original) if how == "deepcopy" else pickle.loads(pickle.dumps(original))
    assert rows(clone) == rows(original)
    assert set(clone.state_dict()) == set(original.state_dict())
    assert [r.kind for r in list_regularizers(clone)].count("optimizer") == 0  # the original's optimizer stays
    clone_opt = torch.optim.SGD(clone.parameters(), lr=0.1)
    bind_optimizer(clone, clone_opt)
    for _ in range(2):  # the same steps on both: bit for bit the same losses and weights
        assert torch.equal(train_step(clone, clone_opt, x), train_step(original, opt, x))
        for name, value in state(original).items():
            assert torch.equal(state(clone)[name], value), name
    original(x), clone(x)
    assert torch.equal(regularization_loss(clone), regularization_loss(original))
    for handle in reversed(handles):
        handle.remove()
    assert rows(original) == []
    assert rows(clone) != []  # removing the original's attachments leaves the copy's alone
    assert torch.equal(regularization_loss(clone), regularization_loss(clone))


@given(kinds=st.lists(st.sampled_from(sorted(ATTACH)), unique=True, min_size=1, max_size=4), seed=st.integers(0, 2**31))
def test_reading_the_loss_changes_nothing(kinds, seed) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    m, _opt, _ = build(kinds)
    m(x)
    before = state(m)
    first = regularization_loss(m)
    assert torch.equal(regularization_loss(m), first)
    for name, value in state(m).items():
        assert torch.equal(value, before[name]), name


def test_schedules_advance_once_per_bound_optimizer_step() -> None:
    m = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(1.0)
    attach_penalty(m, L2(rising))
    opt = torch.optim.SGD(m.parameters(), lr=0.0)  # lr 0: the weight stays at 1, only the schedule moves
    seen = [regularization_loss(m).item()]
    step_regularizers(m)  # a manual step counts as one
    seen.append(regularization_loss(m).item())
    bind_optimizer(m, opt)
    for _ in range(2):
        opt.zero_grad()
        regularization_loss(m).backward()
        opt.step()
        seen.append(regularization_loss(m).item())
    # L2 of a weight of ones (2 entries) is 2 * factor, and the factor at step s is 0.05 * (s + 1)
    assert seen == pytest.approx([2 * 0.05 * (s + 1) for s in range(4)])


def test_project_constraint_without_an_optimizer_is_refused_and_one_optimizer_drives_a_model() -> None:
    m = nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"needs the optimizer.*bind_optimizer.*Received: optimizer=None"):
        attach_constraint(m, MaxNorm())
    first, second = torch.optim.SGD(m.parameters(), lr=0.1), torch.optim.SGD(m.parameters(), lr=0.1)
    binding = bind_optimizer(m, first)
    with pytest.raises(ValueError, match=r"SGD is already bound to this model.*Received: optimizer=SGD"):
        bind_optimizer(m, second)
    with pytest.raises(ValueError, match=r"SGD is already bound to this model; bind it once"):
        bind_optimizer(m, first)
    with pytest.raises(ValueError, match=r"already bound to this model and drives its constraints"):
        attach_constraint(m, MaxNorm(), optimizer=second)
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer\. Received: optimizer=str"):
        bind_optimizer(m, "sgd")  # type: ignore[arg-type]
    binding.remove()
    handle = attach_constraint(m, MaxNorm(), optimizer=second)  # binds second, and unbinds it on remove
    assert [r.kind for r in list_regularizers(m)] == ["constraint", "optimizer"]
    handle.remove()
    assert list(list_regularizers(m)) == []


def test_stochastic_depth_and_init_records_travel_with_a_copy() -> None:
    net = blockzoo.create_model("resnet20")
    handle = attach_stochastic_depth(net, 0.2)
    rates = [m.drop_path.p for m in net.modules() if isinstance(m, blockzoo.ResidualBlock)]
    clone = copy.deepcopy(net)
    handle.remove()
    assert [m.drop_path.p for m in clone.modules() if isinstance(m, blockzoo.ResidualBlock)] == rates
    assert max(rates) == pytest.approx(0.2)
    assert all(m.drop_path.p == 0 for m in net.modules() if isinstance(m, blockzoo.ResidualBlock))
    (row,) = list_regularizers(clone)
    row.handle.remove()  # the copy's own handle, from its listing
    assert all(m.drop_path.p == 0 for m in clone.modules() if isinstance(m, blockzoo.ResidualBlock))


def test_activity_penalty_on_an_empty_batch_adds_zero() -> None:
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    attach_activity_penalty(m, L1(1e-3), include="1")
    m(torch.randn(0, 4))
    loss = regularization_loss(m)
    assert loss.item() == 0
    assert not torch.isnan(loss)


def test_removing_the_constraint_that_bound_the_optimizer_keeps_the_binding_while_others_use_it() -> None:
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    opt = torch.optim.SGD(m.parameters(), lr=10.0)
    first = attach_constraint(m, MaxNorm(1.0), optimizer=opt, include="0.*")
    attach_constraint(m, MaxNorm(1.0), include="1.*")  # driven by the binding the first one made
    first.remove()
    assert sorted(r.kind for r in list_regularizers(m)) == ["constraint", "optimizer"]
    m(torch.randn(8, 4)).pow(2).sum().backward()
    opt.step()
    assert m[1].weight.norm(dim=1).max().item() <= 1 + 1e-6


def test_a_generator_shared_by_two_attachments_stays_shared_in_a_copy() -> None:
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    generator = torch.Generator().manual_seed(0)
    attach_grad_noise(m, 0.1, include="0.*", generator=generator)
    attach_grad_noise(m, 0.1, include="1.*", generator=generator)
    twin = copy.deepcopy(m)
    for net in (m, twin):
        net(torch.zeros(1, 4)).sum().backward()
    for a, b in zip(m.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


def test_a_failed_parametrization_leaves_the_model_as_it_was() -> None:
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(64, 2))
    names = [n for n, _ in m.named_parameters()]
    with pytest.raises(
        ValueError,
        match=r"MaxNorm\(max_value=1, dim=\(1, 2, 3\)\) cannot be applied to 2\.weight \(shape \[2, 64\]\): Dimension",
    ):
        attach_constraint(m, MaxNorm(1.0, dim=(1, 2, 3)), mode="parametrize")
    assert [n for n, _ in m.named_parameters()] == names
    assert list(list_regularizers(m)) == []


def test_an_activity_penalty_on_a_conv_blocks_convs_sees_the_last_units_output() -> None:
    block = blockzoo.ConvBlock(3, 4, num_convs=2).eval()
    x = torch.randn(2, 3, 6, 6)
    convs_out = block.convs(x)  # ConvBlock calls the units in turn, not the container
    attach_activity_penalty(block, L1(0.1), include="convs")
    block(x)
    torch.testing.assert_close(regularization_loss(block), 0.1 * convs_out.abs().sum() / 2)
    assert block.modules_run_inline() == {block.convs: block.convs[1]}


def test_an_activity_penalty_sees_the_parts_a_residual_block_runs_inline() -> None:
    block = blockzoo.BasicBlock(8, 8).eval()
    x = torch.randn(2, 8, 5, 5)
    unit_out = block.branch[0](x)  # what the first conv-norm-act unit gives, called as a module
    attach_activity_penalty(block, L1(0.1), include="branch.0")
    block(x)
    torch.testing.assert_close(regularization_loss(block), 0.1 * unit_out.abs().sum() / 2)
    assert set(block.modules_run_inline()) == {block.branch, block.branch[0], block.branch[1]}
