"""find_lr: the lr schedule, smoothing, stopping, NaN steps, rules, plots, and putting everything back."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from blockzoo import create_optimizer
from blockzoo.errors import UnknownNameError
from blockzoo.regularization import L2, attach_penalty, bind_optimizer, regularization_loss
from blockzoo.train import LRFinderResult, find_lr, fit
from support import DEVICES

PNG = b"\x89PNG\r\n\x1a\n"


def data(n: int = 64, features: int = 6, classes: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def net() -> nn.Sequential:
    """Batch norm (buffers, num_batches_tracked) and dropout (draws from the global RNG)."""
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))


def scripted(values: list[float]) -> Callable[[Tensor, Tensor], Tensor]:
    """A loss whose value at its k-th call is ``values[k]`` (NaN past the end), with a gradient through the output."""
    calls = iter(values)

    def loss(output: Tensor, target: Tensor) -> Tensor:
        return output.sum().double() * 0 + next(calls, math.nan)  # float64: the values come back exactly

    return loss


def step_lrs(optimizer: torch.optim.Optimizer) -> list[list[float]]:
    """Records each group's lr at every optimizer step."""
    seen: list[list[float]] = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append([g["lr"] for g in opt.param_groups]))
    return seen


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_tensors(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------ schedule


def test_lr_grows_exponentially_from_start_to_end_and_the_optimizer_uses_it() -> None:
    model = nn.Linear(6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    seen = step_lrs(optimizer)
    result = find_lr(model, data(), optimizer=optimizer, start_lr=1e-5, end_lr=1e-2, num_steps=7, diverge=math.inf)
    assert len(result.lrs) == 7
    assert result.lrs[0] == 1e-5
    assert result.lrs[-1] == pytest.approx(1e-2)
    ratio = (1e-2 / 1e-5) ** (1 / 6)
    assert [b / a for a, b in zip(result.lrs, result.lrs[1:], strict=False)] == pytest.approx([ratio] * 6)
    assert [s[0] for s in seen] == list(result.lrs)


def test_parameter_groups_keep_their_ratio_to_the_base_lr() -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = create_optimizer(model, "sgd", lr=0.1, lr_multipliers={"2.*": 10.0})
    seen = step_lrs(optimizer)
    result = find_lr(model, data(), optimizer=optimizer, start_lr=1e-4, end_lr=1e-2, num_steps=5, diverge=math.inf)
    names = {id(p): n for n, p in model.named_parameters()}
    head = [i for i, g in enumerate(optimizer.param_groups) if names[id(g["params"][0])].startswith("2.")]
    assert head
    for lrs, base in zip(seen, result.lrs, strict=True):
        for i, lr in enumerate(lrs):
            assert lr == pytest.approx(base * (10.0 if i in head else 1.0))


def test_short_data_is_cycled_one_batch_per_step() -> None:
    x, y = data(10)
    model = nn.Linear(6, 3)
    sizes: list[int] = []
    model.register_forward_hook(lambda m, args, out: sizes.append(len(args[0])))
    result = find_lr(model, (x, y), batch_size=4, num_steps=9, start_lr=1e-5, end_lr=1e-3, diverge=math.inf)
    assert len(result.lrs) == 9
    assert sizes == [4, 4, 2] * 3  # three epochs of 10 samples


def test_dataloader_and_split_are_accepted() -> None:
    x, y = data(32)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    result = find_lr(nn.Linear(6, 3), loader, num_steps=6, start_lr=1e-5, end_lr=1e-3, diverge=math.inf)
    assert len(result.lrs) == 6
    from blockzoo.data import Split

    split = Split(x, y, x[:0], y[:0])  # its training part is what find_lr uses
    assert len(find_lr(nn.Linear(6, 3), split, num_steps=3, diverge=math.inf).lrs) == 3


def test_multi_input_batches_are_unpacked() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(6, 3), nn.Linear(6, 3)

        def forward(self, u: Tensor, v: Tensor) -> Tensor:
            return self.a(u) + self.b(v)

    x, y = data(16)
    loader = DataLoader(
        TensorDataset(x, x.flip(1), y),
        batch_size=8,
        collate_fn=lambda s: (
            (torch.stack([t[0] for t in s]), torch.stack([t[1] for t in s])),
            torch.stack([t[2] for t in s]),
        ),
    )
    assert len(find_lr(Two(), loader, num_steps=4, diverge=math.inf).lrs) == 4


def test_same_seed_same_curve() -> None:
    x, y = data()
    models = [net(), net()]
    models[1].load_state_dict(models[0].state_dict())
    runs = [find_lr(m, (x, y), num_steps=12, seed=3, batch_size=16) for m in models]
    assert runs[0].losses == runs[1].losses
    assert runs[0].losses != find_lr(models[0], (x, y), num_steps=12, seed=4, batch_size=16).losses


# ------------------------------------------------------- smoothing and stopping


@pytest.mark.parametrize("smooth", [0.05, 0.3, 1.0])
def test_smoothed_is_the_bias_corrected_moving_average(smooth: float) -> None:
    values = [2.0, 1.0, 3.0, 0.5, 0.25, 1.5]
    result = find_lr(nn.Linear(6, 3), data(), loss=scripted(values), num_steps=6, smooth=smooth, diverge=math.inf)
    assert result.losses == tuple(values)
    # closed form: weights smooth * (1 - smooth)^age, normalised by their sum
    for n in range(1, len(values) + 1):
        weights = [smooth * (1 - smooth) ** (n - 1 - k) for k in range(n)]
        expected = sum(w * v for w, v in zip(weights, values[:n], strict=True)) / sum(weights)
        assert result.smoothed[n - 1] == pytest.approx(expected)
    if smooth == 1.0:
        assert result.smoothed == tuple(values)


def test_stops_when_the_smoothed_loss_exceeds_diverge_times_its_lowest() -> None:
    values = [4.0, 2.0, 1.0, 1.5, 3.5, 5.0, 1.0, 1.0]
    result = find_lr(nn.Linear(6, 3), data(), loss=scripted(values), smooth=1.0, diverge=4.0, num_steps=8)
    assert result.losses == (4.0, 2.0, 1.0, 1.5, 3.5, 5.0)  # 5.0 > 4 * 1.0: recorded, then the end


def test_a_diverging_model_stops_early() -> None:
    x, y = data()
    result = find_lr(nn.Linear(6, 3), (x * 100, y), optimizer="sgd", start_lr=1e-4, end_lr=1e4, num_steps=60)
    assert len(result.lrs) < 60
    assert result.smoothed[-1] > 4.0 * min(result.smoothed)


def test_non_finite_steps_are_skipped_and_take_no_optimizer_step() -> None:
    nan, inf = math.nan, math.inf
    model = nn.Linear(6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = step_lrs(optimizer)
    values = [3.0, nan, 2.0, inf, nan, 1.5, 1.4]
    result = find_lr(model, data(), optimizer=optimizer, loss=scripted(values), num_steps=7, smooth=1.0)
    schedule = [1e-7 * (10.0 / 1e-7) ** (i / 6) for i in range(7)]
    kept = [0, 2, 5, 6]
    assert result.losses == (3.0, 2.0, 1.5, 1.4)
    assert result.lrs == pytest.approx([schedule[i] for i in kept])
    assert [s[0] for s in seen] == list(result.lrs)


def test_three_non_finite_steps_in_a_row_end_the_test() -> None:
    model = nn.Linear(6, 3)
    calls: list[int] = []
    model.register_forward_hook(lambda m, args, out: calls.append(1))
    values = [3.0, 2.0, 1.9, math.nan, math.nan, math.nan, 1.0, 1.0]
    result = find_lr(model, data(), loss=scripted(values), num_steps=8, smooth=1.0)
    assert result.losses == (3.0, 2.0, 1.9)
    assert len(calls) == 6


def test_no_finite_loss_warns_and_suggests_nan() -> None:
    with pytest.warns(RuntimeWarning, match="too few for a suggestion"):
        result = find_lr(nn.Linear(6, 3), data(), loss=scripted([]), num_steps=10)
    assert result.lrs == ()
    assert math.isnan(result.suggestion)


# ------------------------------------------------------------------- rules

CURVE = [3.0, 3.0, 2.9, 2.0, 1.0, 0.8, 0.7, 0.9, 1.5]


def curve_result(suggestion: Any) -> LRFinderResult:
    return find_lr(
        nn.Linear(6, 3), data(), loss=scripted(CURVE), num_steps=len(CURVE), smooth=1.0, suggestion=suggestion
    )


def test_steepest_is_the_fastest_fall_against_log_lr() -> None:
    result = curve_result("steepest")
    # log(lr) is evenly spaced: the slope is proportional to (L[i+1] - L[i-1]); -1.9 at i=3 is the lowest
    assert result.suggestion == result.lrs[3]
    assert result.rule == "steepest"


def test_steepest_ignores_falls_after_the_lowest_loss() -> None:
    values = [2.0, 1.9, 1.5, 1.4, 1.3, 9.0, 1.2, 1.1]  # the fall 9.0 -> 1.2 comes after the lowest (1.1 is last)
    result = find_lr(nn.Linear(6, 3), data(), loss=scripted(values), num_steps=8, smooth=1.0, diverge=math.inf)
    # central differences: i=2: -0.25, i=6: -3.95; the lowest point is i=7, so i=6 counts too
    assert result.suggestion == result.lrs[6]
    values = [2.0, 1.8, 1.0, 0.95, 9.0, 1.2, 1.1, 1.05]  # lowest at i=3: the later fall 9.0 -> 1.2 does not count
    result = find_lr(nn.Linear(6, 3), data(), loss=scripted(values), num_steps=8, smooth=1.0, diverge=math.inf)
    assert result.suggestion == result.lrs[1]  # i=0: -0.2, i=1: -0.5, i=2: -0.425 (i=5: -3.95 is past the lowest)


def test_minimum_is_a_tenth_of_the_lr_at_the_lowest_loss() -> None:
    result = curve_result("minimum")
    assert result.suggestion == pytest.approx(result.lrs[6] / 10)


def test_valley_is_two_thirds_along_the_longest_fall() -> None:
    result = curve_result("valley")
    # the loss falls from index 1 to index 6 (five steps); two thirds of five steps is index 1 + 3
    assert result.suggestion == result.lrs[4]


def test_a_callable_rule() -> None:
    def first(lrs: Any, losses: Any) -> float:
        return float(lrs[0])

    result = curve_result(first)
    assert result.rule == "first"
    assert result.suggestion == result.lrs[0]


def test_unknown_rule_suggests_close_names_before_training() -> None:
    model = nn.Linear(6, 3)
    calls: list[int] = []
    model.register_forward_hook(lambda m, args, out: calls.append(1))
    with pytest.raises(UnknownNameError, match="Did you mean 'steepest'"):
        find_lr(model, data(), suggestion="stepest")
    assert not calls


# ------------------------------------------------------------- putting back


def test_everything_is_put_back() -> None:
    x, y = data()
    model = net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()  # the optimizer has state; the gradients stay as they are
    model[1].eval()  # one sub-module in another mode than its parent
    handle = attach_penalty(model, L2(lambda step: 1e-4 * (step + 1)), include="0.weight")
    binding = bind_optimizer(model, optimizer)  # its steps advance the penalty's schedule
    for _ in range(3):
        optimizer.step()
    before_model = copy.deepcopy(model)
    before_state = snapshot(model)
    before_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    before_optimizer = copy.deepcopy(optimizer.state_dict())
    before_penalty = regularization_loss(model).item()
    before_rng = (torch.get_rng_state(), random.getstate())

    find_lr(model, (x, y), optimizer=optimizer, num_steps=15, batch_size=16)

    assert_same_tensors(snapshot(model), before_state)
    assert_same_tensors({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, before_grads)
    assert [m.training for m in model.modules()] == [m.training for m in before_model.modules()]
    after = optimizer.state_dict()
    assert after["param_groups"] == before_optimizer["param_groups"]
    for k, state in before_optimizer["state"].items():
        assert_same_tensors(after["state"][k], state)
    assert regularization_loss(model).item() == before_penalty
    assert torch.equal(torch.get_rng_state(), before_rng[0])
    assert random.getstate() == before_rng[1]
    binding.remove()
    handle.remove()


def test_numpy_rng_is_put_back() -> None:
    np = pytest.importorskip("numpy")
    before = np.random.get_state()
    find_lr(net(), data(), num_steps=4, seed=5, batch_size=16)
    after = np.random.get_state()
    assert after[0] == before[0]
    assert (after[1] == before[1]).all()
    assert after[2:] == before[2:]


def train_after(with_find_lr: bool) -> tuple[dict[str, Tensor], list[float]]:
    torch.manual_seed(7)
    x, y = data()
    model = net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    optimizer.zero_grad()
    if with_find_lr:
        find_lr(model, (x, y), optimizer=optimizer, num_steps=20, batch_size=16)
    # seed=None: fit draws its batch order (and dropout draws its masks) from the global RNG
    history = fit(model, (x, y), optimizer=optimizer, epochs=2, batch_size=16, progress=False, device="cpu")
    return snapshot(model), history["train_loss"]


def test_training_after_find_lr_is_bit_for_bit_the_same() -> None:
    state, losses = train_after(True)
    expected_state, expected_losses = train_after(False)
    assert losses == expected_losses
    assert_same_tensors(state, expected_state)


def test_put_back_after_an_error_too() -> None:
    model = net()
    before = snapshot(model)

    def failing(output: Tensor, target: Tensor) -> Tensor:
        if len(calls) == 3:
            raise RuntimeError("boom")
        calls.append(1)
        return F.cross_entropy(output, target)

    calls: list[int] = []
    with pytest.raises(RuntimeError, match="boom"):
        find_lr(model, data(), loss=failing, num_steps=10, batch_size=16, start_lr=1e-2)
    assert_same_tensors(snapshot(model), before)
    assert model.training


@pytest.mark.parametrize("device", DEVICES)
def test_a_model_moved_for_the_test_is_moved_back(device: str) -> None:
    model = net()
    before = snapshot(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    find_lr(model, data(), optimizer=optimizer, device=device, num_steps=5, batch_size=16)
    assert all(t.device.type == "cpu" for t in model.state_dict().values())
    assert_same_tensors(snapshot(model), before)
    assert optimizer.state_dict()["state"] == {}


# ------------------------------------------------------------------ result


def test_plot_has_a_log_axis_the_curves_and_the_suggestion(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = curve_result("steepest")
    path = tmp_path / "lr.png"
    figure = result.plot(path)
    (ax,) = figure.axes
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 3  # raw, smoothed, suggestion
    assert list(ax.lines[1].get_ydata()) == list(result.smoothed)
    assert ax.lines[2].get_xdata()[0] == result.suggestion
    assert path.read_bytes()[:8] == PNG


def test_plot_without_a_suggestion_has_no_marker() -> None:
    pytest.importorskip("matplotlib")
    figure = LRFinderResult((1e-3,), (1.0,), (1.0,), math.nan, "steepest").plot()
    assert len(figure.axes[0].lines) == 2


def test_result_is_frozen_and_its_repr_is_short() -> None:
    result = LRFinderResult((1e-4, 1e-3), (2.0, 1.0), (2.0, 1.5), 1e-3, "minimum")
    assert repr(result) == "LRFinderResult(steps=2, suggestion=0.001, rule='minimum')"
    with pytest.raises(AttributeError):
        result.rule = "x"  # type: ignore[misc]


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"start_lr": 0.0}, ValueError, r"start_lr must be .*Received: start_lr=0.0"),
        ({"end_lr": math.nan}, ValueError, r"end_lr must be .*Received: end_lr=nan"),
        (
            {"start_lr": 1e-2, "end_lr": 1e-3},
            ValueError,
            r"end_lr must be greater than start_lr .*Received: end_lr=0.001",
        ),
        ({"num_steps": 1}, ValueError, r"num_steps must be .*Received: num_steps=1"),
        ({"batch_size": 0}, ValueError, r"batch_size must be .*Received: batch_size=0"),
        ({"smooth": 0.0}, ValueError, r"smooth must be .*Received: smooth=0.0"),
        ({"smooth": 1.5}, ValueError, r"smooth must be .*Received: smooth=1.5"),
        ({"diverge": 1.0}, ValueError, r"diverge must be .*Received: diverge=1.0"),
        ({"seed": -1}, ValueError, r"seed must be .*Received: seed=-1"),
        ({"suggestion": 3}, TypeError, r"suggestion must be 'steepest'.*Received: suggestion=3"),
        ({"loss": "mse"}, UnknownNameError, r"Unknown loss 'mse'"),
        ({"optimizer": 3}, TypeError, r"optimizer must be a name.*Received: optimizer=int"),
        ({"device": "nowhere"}, ValueError, r"device must be 'auto' or a torch device"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        find_lr(nn.Linear(6, 3), data(), **kwargs)


def test_bad_model_and_data() -> None:
    with pytest.raises(TypeError, match=r"model must be an nn.Module. Received: model=str"):
        find_lr("resnet18", data())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"data must be an \(inputs, targets\) pair.*Received: data=int"):
        find_lr(nn.Linear(6, 3), 5)


def test_empty_loader() -> None:
    empty = DataLoader(TensorDataset(torch.zeros(0, 6), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="data: gives no batch"):
        find_lr(nn.Linear(6, 3), empty)
