"""The shared validators (blockzoo._checks) and every public argument that goes through them."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo import ClassifierHead, ConvBlock, DropBlock, DropPath, SqueezeExcite
from blockzoo._checks import check_int, check_number, check_positive_int, check_probability
from blockzoo.blocks._drop import drop_path_rates
from blockzoo.data import digits
from blockzoo.init import lsuv_, sparse_, variance_scaling_
from blockzoo.layers import GlobalPool, resolve_layer
from blockzoo.optim import param_groups
from blockzoo.regularization import L1, L1L2, L2, MaxNorm, MinMaxNorm, Orthogonal

NAN, INF = float("nan"), float("inf")


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


# ----------------------------------------------------------------------------- laws of the validators

bounds = st.none() | st.floats(-1e6, 1e6, allow_nan=False)
values = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(10**20), 10**20)
    | st.booleans()
    | st.sampled_from(["1.0", None, [1.0], 1j])
)


def in_bounds(x: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    above = low is None or (x > low if low_open else x >= low)
    below = high is None or (x < high if high_open else x <= high)
    return above and below


@given(
    value=values,
    low=bounds,
    high=bounds,
    low_open=st.booleans(),
    high_open=st.booleans(),
    allow_inf=st.booleans(),
)
def test_check_number_accepts_exactly_the_real_numbers_in_range(
    value: Any, low: float | None, high: float | None, low_open: bool, high_open: bool, allow_inf: bool
) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    accepted = (
        is_number
        and not math.isnan(value)
        and (allow_inf or not math.isinf(value))
        and in_bounds(value, low, high, low_open, high_open)
    )
    kwargs = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "allow_inf": allow_inf}
    if accepted:
        result = check_number("x", value, **kwargs)
        assert type(result) is float
        assert result == float(value)
    else:
        with pytest.raises(ValueError, match=rf"^x must be a .+\. Received: x={re.escape(repr(value))}$"):
            check_number("x", value, **kwargs)


@given(value=values, low=st.none() | st.integers(-50, 50), span=st.none() | st.integers(0, 100))
def test_check_int_accepts_exactly_the_ints_in_range(value: Any, low: int | None, span: int | None) -> None:
    high = None if span is None else (0 if low is None else low) + span
    is_int = isinstance(value, int) and not isinstance(value, bool)
    accepted = is_int and in_bounds(value, low, high, False, False)
    if accepted:
        result = check_int("n", value, low=low, high=high)
        assert type(result) is int
        assert result == value
    else:
        with pytest.raises(ValueError, match=rf"^n must be an? .+\. Received: n={re.escape(repr(value))}$"):
            check_int("n", value, low=low, high=high)


def test_none_is_accepted_only_when_allowed() -> None:
    assert check_number("x", None, low=0, allow_none=True) is None
    assert check_int("n", None, low=0, allow_none=True) is None
    with pytest.raises(ValueError, match=exactly("x must be a finite number >= 0. Received: x=None")):
        check_number("x", None, low=0)
    with pytest.raises(ValueError, match=exactly("n must be a non-negative int. Received: n=None")):
        check_int("n", None, low=0)


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({}, "a finite number"),
        ({"allow_inf": True}, "a number other than NaN"),
        ({"low": 0}, "a finite number >= 0"),
        ({"low": 0, "low_open": True}, "a finite number > 0"),
        ({"low": 0.5, "allow_inf": True}, "a number >= 0.5"),
        ({"high": 1e-3, "high_open": True}, "a finite number < 0.001"),
        ({"low": 0, "high": 1}, "a number in [0, 1]"),
        ({"low": 0, "high": 1, "low_open": True, "high_open": True}, "a number in (0, 1)"),
        ({"low": 0, "high": 1, "low_open": True, "allow_none": True}, "a number in (0, 1] or None"),
        ({"low": 0, "alternative": "a callable of the step"}, "a finite number >= 0 or a callable of the step"),
    ],
)
def test_number_rules_in_words(kwargs: dict[str, Any], rule: str) -> None:
    with pytest.raises(ValueError, match=exactly(f"x must be {rule}. Received: x=nan")):
        check_number("x", NAN, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({}, "an int"),
        ({"low": 1}, "a positive int"),
        ({"low": 0}, "a non-negative int"),
        ({"low": 2}, "an int >= 2"),
        ({"high": 3}, "an int <= 3"),
        ({"low": 0, "high": 3}, "an int in [0, 3]"),
    ],
)
def test_int_rules_in_words(kwargs: dict[str, Any], rule: str) -> None:
    with pytest.raises(ValueError, match=exactly(f"n must be {rule}. Received: n=2.0")):
        check_int("n", 2.0, **kwargs)


def test_numpy_scalars_are_numbers_and_bools_are_not() -> None:
    np = pytest.importorskip("numpy")
    assert check_number("x", np.float32(0.5), low=0) == 0.5
    assert check_int("n", np.int64(3), low=1) == 3
    with pytest.raises(ValueError, match=exactly("n must be a positive int. Received: n=True")):
        check_positive_int("n", True)
    with pytest.raises(ValueError, match=exactly("p must be a number in [0, 1). Received: p=False")):
        check_probability("p", False)


# ----------------------------------------------------------------------------- every public numeric argument


def _scheduler(**kwargs: Any) -> Any:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    return blockzoo.create_scheduler(opt, "cosine", **{"total_steps": 10, **kwargs})


def _lsuv(**kwargs: Any) -> Any:
    return lsuv_(nn.Linear(2, 2), torch.randn(4, 2), **kwargs)


def _groups(**kwargs: Any) -> Any:
    return param_groups(nn.Linear(2, 2), **{"lr": 0.1, **kwargs})


#: (id, call with the value, argument name, rule, whether +inf means something there)
ARGUMENTS: list[tuple[str, Callable[[Any], Any], str, str, bool]] = [
    ("L1.factor", L1, "factor", "a finite number >= 0 or a callable of the step", False),
    ("L2.factor", L2, "factor", "a finite number >= 0 or a callable of the step", False),
    ("L1L2.l1", lambda v: L1L2(l1=v), "l1", "a finite number >= 0 or a callable of the step", False),
    ("L1L2.l2", lambda v: L1L2(l2=v), "l2", "a finite number >= 0 or a callable of the step", False),
    ("Orthogonal.factor", Orthogonal, "factor", "a finite number >= 0 or a callable of the step", False),
    ("MaxNorm.max_value", MaxNorm, "max_value", "a number >= 0", True),
    ("MinMaxNorm.min_value", lambda v: MinMaxNorm(min_value=v), "min_value", "a finite number >= 0", False),
    ("MinMaxNorm.max_value", lambda v: MinMaxNorm(max_value=v), "max_value", "a number >= 0", True),
    ("MinMaxNorm.rate", lambda v: MinMaxNorm(rate=v), "rate", "a number in [0, 1]", False),
    ("param_groups.lr", lambda v: param_groups(nn.Linear(2, 2), lr=v), "lr", "a finite number >= 0", False),
    ("param_groups.weight_decay", lambda v: _groups(weight_decay=v), "weight_decay", "a finite number >= 0", False),
    ("param_groups.layer_decay", lambda v: _groups(layer_decay=v), "layer_decay", "a number in (0, 1] or None", False),
    (
        "param_groups.lr_multipliers",
        lambda v: _groups(lr_multipliers={"*": v}),
        "lr_multipliers['*']",
        "a finite number >= 0",
        False,
    ),
    (
        "create_scheduler.warmup_steps",
        lambda v: _scheduler(warmup_steps=v),
        "warmup_steps",
        "a non-negative int",
        False,
    ),
    (
        "create_scheduler.total_steps",
        lambda v: _scheduler(total_steps=v),
        "total_steps",
        "an int greater than warmup_steps (0)",
        False,
    ),
    (
        "variance_scaling_.scale",
        lambda v: variance_scaling_(torch.empty(3, 3), v),
        "scale",
        "a finite number > 0",
        False,
    ),
    ("sparse_.sparsity", lambda v: sparse_(torch.empty(3, 3), v), "sparsity", "a number in [0, 1]", False),
    ("sparse_.std", lambda v: sparse_(torch.empty(3, 3), 0.5, v), "std", "a finite number >= 0", False),
    ("lsuv_.tol", lambda v: _lsuv(tol=v), "tol", "a number in (0, 1)", False),
    ("lsuv_.max_iters", lambda v: _lsuv(max_iters=v), "max_iters", "a positive int", False),
    ("digits.val_fraction", lambda v: digits(val_fraction=v), "val_fraction", "a number in (0, 1)", False),
    ("digits.image_size", lambda v: digits(image_size=v), "image_size", "an int >= 8 or None", False),
    ("digits.channels", lambda v: digits(channels=v), "channels", "1 (grey) or 3 (RGB)", False),
    ("SqueezeExcite.rd_ratio", lambda v: SqueezeExcite(8, rd_ratio=v), "rd_ratio", "a number in (0, 1]", False),
    ("ClassifierHead.num_classes", lambda v: ClassifierHead(8, v), "num_classes", "a non-negative int", False),
    ("ClassifierHead.drop_rate", lambda v: ClassifierHead(8, 2, drop_rate=v), "drop_rate", "a number in [0, 1)", False),
    ("ConvBlock.drop_rate", lambda v: ConvBlock(3, 8, drop_rate=v), "drop_rate", "a number in [0, 1)", False),
    ("DropPath.p", DropPath, "p", "a number in [0, 1)", False),
    ("DropBlock.p", DropBlock, "p", "a number in [0, 1)", False),
    ("DropBlock.block_size", lambda v: DropBlock(0.1, v), "block_size", "a positive int", False),
    ("drop_path_rates.rate", lambda v: drop_path_rates(v, 3), "rate", "a number in [0, 1)", False),
    ("GlobalPool.spatial_dims", lambda v: GlobalPool("avg", v), "spatial_dims", "one of 1, 2, 3", False),
    (
        "resolve_layer.spatial_dims",
        lambda v: resolve_layer("norm", "batchnorm", spatial_dims=v),
        "spatial_dims",
        "one of 0, 1, 2, 3",
        False,
    ),
    (
        "simple_cnn.img_size",
        lambda v: blockzoo.create_model("simple_cnn", img_size=v),
        "img_size",
        "a positive int",
        False,
    ),
    ("mlp.img_size", lambda v: blockzoo.create_model("mlp", img_size=v), "img_size", "a positive int", False),
]


@pytest.mark.parametrize("value", [NAN, INF, -INF, True], ids=["nan", "inf", "-inf", "bool"])
@pytest.mark.parametrize(("call", "name", "rule", "inf_ok"), [a[1:] for a in ARGUMENTS], ids=[a[0] for a in ARGUMENTS])
def test_every_numeric_argument_refuses_nan_bools_and_meaningless_infinity(
    call: Callable[[Any], Any], name: str, rule: str, inf_ok: bool, value: Any
) -> None:
    if value == INF and inf_ok:
        call(value)
        return
    with pytest.raises(ValueError, match=exactly(f"{name} must be {rule}. Received: {name}={value!r}")):
        call(value)


def test_infinite_norm_bounds_mean_no_bound() -> None:
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    assert torch.allclose(MaxNorm(INF)(w), w, atol=1e-6)  # no bound: the weight stays as it is
    at_least_one = MinMaxNorm(1.0, INF)(w)
    assert torch.allclose(at_least_one.norm(dim=1), torch.tensor([5.0, 1.0]), atol=1e-5)
    assert repr(MaxNorm(INF)) == "MaxNorm(max_value=inf)"


def test_a_schedule_that_returns_nan_or_inf_is_refused_when_read() -> None:
    w = torch.ones(2)
    for bad in (NAN, INF):
        penalty = L2(functools.partial(lambda step, v: v, v=bad))
        with pytest.raises(
            ValueError, match=exactly(f"factor(0) must be a finite number >= 0. Received: factor(0)={bad!r}")
        ):
            penalty(w)


_TAKES_A_MODEL = {
    "init_weights": lambda m: blockzoo.init_weights(m),
    "init_report": lambda m: blockzoo.init_report(m),
    "lsuv_": lambda m: blockzoo.lsuv_(m, torch.zeros(2, 3)),
    "zero_init_last_": lambda m: blockzoo.zero_init_last_(m),
    "attach_stochastic_depth": lambda m: blockzoo.regularization.attach_stochastic_depth(m, 0.1),
    "regularization_loss": lambda m: blockzoo.regularization.regularization_loss(m),
    "step_regularizers": lambda m: blockzoo.regularization.step_regularizers(m),
    "list_regularizers": lambda m: blockzoo.regularization.list_regularizers(m),
    "fit": lambda m: blockzoo.train.fit(m, "digits", epochs=1),
    "find_lr": lambda m: blockzoo.train.find_lr(m, "digits"),
    "count_params": lambda m: blockzoo.count_params(m),
    "summary": lambda m: blockzoo.summary(m),
    "explain_fusion": lambda m: blockzoo.explain_fusion(m),
    "fuse_conv_bn": lambda m: blockzoo.fuse_conv_bn(m),
    "to_channels_last": lambda m: blockzoo.to_channels_last(m),
    "export_model": lambda m: blockzoo.export_model(m, torch.zeros(2, 3)),
    "optimize_for_inference": lambda m: blockzoo.optimize_for_inference(m, torch.zeros(2, 3)),
}


@pytest.mark.parametrize("name", sorted(_TAKES_A_MODEL))
def test_every_function_that_takes_a_model_refuses_anything_else_the_same_way(name: str) -> None:
    with pytest.raises(TypeError, match=r"model must be an nn\.Module\. Received: model=str$"):
        _TAKES_A_MODEL[name]("resnet18")
