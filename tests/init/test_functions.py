"""Initializer draws against theory written out here, independently of blockzoo's own moments."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import blockzoo
from blockzoo.init import get_initializer, initializer, list_initializers, variance_scaling_

MIN_DRAWS = 65536

# Each check fails by chance 0.27% of the time (three standard errors), so the statistical
# tests draw the same examples in every run and profile: a failure is then a real, repeatable one.
statistical = settings(derandomize=True, database=None)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def truncated_std(std: float, a: float, b: float) -> float:
    """Std of N(0, std) cut to [a, b], by numerical integration (midpoint rule)."""
    steps = 200_000
    h = (b - a) / steps
    xs = [a + (i + 0.5) * h for i in range(steps)]
    ws = [math.exp(-0.5 * (x / std) ** 2) for x in xs]
    z = sum(ws)
    mean = sum(w * x for w, x in zip(ws, xs, strict=True)) / z
    return math.sqrt(sum(w * (x - mean) ** 2 for w, x in zip(ws, xs, strict=True)) / z)


def assert_moments(t: torch.Tensor, mean: float, std: float) -> None:
    """Sample mean and std within three standard errors of the theory."""
    x = t.detach().double().flatten()
    n = x.numel()
    assert n >= MIN_DRAWS
    m, s = x.mean().item(), x.std().item()
    m4 = ((x - m) ** 4).mean().item()
    se_mean = s / math.sqrt(n)
    se_std = math.sqrt(max(m4 - s**4, 0.0) / n) / (2 * s)
    assert abs(m - mean) <= 3 * se_mean, (m, mean, se_mean)
    assert abs(s - std) <= 3 * se_std, (s, std, se_std)


@st.composite
def shapes(draw: st.DrawFn) -> tuple[int, ...]:
    if draw(st.booleans()):
        rows = draw(st.integers(16, 512))
        return rows, -(-MIN_DRAWS // rows)
    k = draw(st.sampled_from([1, 3, 5]))
    out = draw(st.integers(8, 128))
    return out, -(-MIN_DRAWS // (out * k * k)), k, k


def gain_of(nonlinearity: str, a: float) -> float:
    return {"relu": math.sqrt(2), "leaky_relu": math.sqrt(2 / (1 + a * a)), "linear": 1.0, "tanh": 5 / 3}[nonlinearity]


@statistical
@given(
    shape=shapes(),
    seed=st.integers(0, 2**31),
    kind=st.sampled_from(["kaiming_normal", "kaiming_uniform"]),
    mode=st.sampled_from(["fan_in", "fan_out"]),
    nonlinearity=st.sampled_from(["relu", "leaky_relu", "linear", "tanh"]),
    a=st.floats(0, 0.5),
)
def test_kaiming(shape, seed, kind, mode, nonlinearity, a) -> None:  # type: ignore[no-untyped-def]
    t = torch.empty(shape)
    init = initializer(kind, a=a, mode=mode, nonlinearity=nonlinearity)
    init(t, generator=torch.Generator().manual_seed(seed))
    fan_in, fan_out = fans(shape)
    expected = gain_of(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    assert_moments(t, 0.0, expected)
    assert init.moments(t) == pytest.approx((0.0, expected))


@statistical
@given(
    shape=shapes(),
    seed=st.integers(0, 2**31),
    kind=st.sampled_from(["xavier_uniform", "xavier_normal"]),
    gain=st.floats(0.1, 3),
)
def test_xavier(shape, seed, kind, gain) -> None:  # type: ignore[no-untyped-def]
    t = torch.empty(shape)
    initializer(kind, gain=gain)(t, generator=torch.Generator().manual_seed(seed))
    fan_in, fan_out = fans(shape)
    assert_moments(t, 0.0, gain * math.sqrt(2 / (fan_in + fan_out)))


@statistical
@given(
    shape=shapes(),
    seed=st.integers(0, 2**31),
    scale=st.floats(0.1, 4),
    mode=st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
    distribution=st.sampled_from(["truncated_normal", "normal", "uniform"]),
)
def test_variance_scaling_matches_keras_formula(shape, seed, scale, mode, distribution) -> None:  # type: ignore[no-untyped-def]
    t = variance_scaling_(torch.empty(shape), scale, mode, distribution, generator=torch.Generator().manual_seed(seed))
    fan_in, fan_out = fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    std = math.sqrt(scale / n)
    assert_moments(t, 0.0, std)
    if distribution == "uniform":
        assert t.abs().max().item() <= math.sqrt(3 * scale / n) * (1 + 1e-6)
    if distribution == "truncated_normal":  # Keras: cut at two std of the *untruncated* normal
        assert t.abs().max().item() <= 2 * std / 0.87962566103423978 * (1 + 1e-6)


def test_truncated_normal_constant_is_the_std_of_a_cut_standard_normal() -> None:
    assert truncated_std(1.0, -2.0, 2.0) == pytest.approx(0.87962566103423978, rel=1e-6)


@statistical
@given(
    seed=st.integers(0, 2**31),
    mean=st.floats(-1, 1),
    std=st.floats(0.1, 2),
    a_sd=st.floats(-3, -0.5),
    b_sd=st.floats(0.5, 3),
)
def test_trunc_normal(seed, mean, std, a_sd, b_sd) -> None:  # type: ignore[no-untyped-def]
    a, b = mean + a_sd * std, mean + b_sd * std
    t = torch.empty(MIN_DRAWS)
    spec = initializer("trunc_normal", mean=mean, std=std, a=a, b=b)
    spec(t, generator=torch.Generator().manual_seed(seed))
    assert a <= t.min().item()
    assert t.max().item() <= b
    # Mean by integration too: shift the grid to the mean.
    cut_std = truncated_std(std, a - mean, b - mean)
    steps = 20_000
    h = (b - a) / steps
    xs = [a + (i + 0.5) * h for i in range(steps)]
    ws = [math.exp(-0.5 * ((x - mean) / std) ** 2) for x in xs]
    cut_mean = sum(w * x for w, x in zip(ws, xs, strict=True)) / sum(ws)
    assert_moments(t, cut_mean, cut_std)
    assert spec.moments(t) == pytest.approx((cut_mean, cut_std), rel=1e-3, abs=1e-4)


@statistical
@given(seed=st.integers(0, 2**31), lo=st.floats(-3, 0), width=st.floats(0.1, 3), std=st.floats(0.01, 3))
def test_uniform_normal_and_lecun(seed, lo, width, std) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    t = initializer("uniform", a=lo, b=lo + width)(torch.empty(MIN_DRAWS), generator=g)
    assert_moments(t, lo + width / 2, width / math.sqrt(12))
    t = initializer("normal", mean=lo, std=std)(torch.empty(MIN_DRAWS), generator=g)
    assert_moments(t, lo, std)
    w = torch.empty(128, 512)
    for name in ("lecun_normal", "lecun_uniform"):
        assert_moments(initializer(name)(w, generator=g), 0.0, 1 / math.sqrt(512))


@statistical
@given(seed=st.integers(0, 2**31), sparsity=st.floats(0.05, 0.9))
def test_sparse(seed, sparsity) -> None:  # type: ignore[no-untyped-def]
    t = initializer("sparse", sparsity=sparsity, std=0.5)(
        torch.empty(256, 512), generator=torch.Generator().manual_seed(seed)
    )
    zeros = math.ceil(sparsity * 256)
    assert ((t == 0).sum(0) >= zeros).all()  # at least that many zeros in every column
    assert abs(t.mean().item()) <= 3 * t.std().item() / math.sqrt(t.numel())


@statistical
@given(rows=st.integers(1, 64), cols=st.integers(1, 64), gain=st.floats(0.5, 2), seed=st.integers(0, 2**31))
def test_orthogonal_rows_or_columns_are_orthonormal(rows, cols, gain, seed) -> None:  # type: ignore[no-untyped-def]
    t = initializer("orthogonal", gain=gain)(
        torch.empty(rows, cols, dtype=torch.float64), generator=torch.Generator().manual_seed(seed)
    )
    gram = t @ t.T if rows <= cols else t.T @ t
    torch.testing.assert_close(gram, gain**2 * torch.eye(min(rows, cols), dtype=torch.float64))
    _, std = initializer("orthogonal", gain=gain).moments(t)  # type: ignore[misc]
    assert (t**2).mean().item() == pytest.approx(std**2)


@pytest.mark.parametrize("name", [n for n in list_initializers() if get_initializer(n).random])
def test_same_generator_gives_bit_identical_tensors(name: str) -> None:
    kwargs = {"sparsity": 0.5} if name == "sparse" else {}
    init = initializer(name, **kwargs)
    a = init(
        torch.empty(16, 8, 3, 3) if name != "sparse" else torch.empty(16, 8), generator=torch.Generator().manual_seed(3)
    )
    b = init(torch.empty_like(a), generator=torch.Generator().manual_seed(3))
    c = init(torch.empty_like(a), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_registry_and_bad_names() -> None:
    names = list_initializers()
    for torch_name in (
        "uniform",
        "normal",
        "constant",
        "zeros",
        "ones",
        "eye",
        "dirac",
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "trunc_normal",
        "orthogonal",
        "sparse",
    ):
        assert torch_name in names
    assert {"variance_scaling", "lecun_normal", "lecun_uniform"} <= set(names)
    assert get_initializer("kaiming_normal_").name == "kaiming_normal"
    with pytest.raises(blockzoo.UnknownNameError, match="kaiming_normal"):
        get_initializer("kaiming_norm")
    with pytest.raises(TypeError, match=r"does not take 'stdev'.*Did you mean 'std'.*Received: stdev=1"):
        initializer("normal", stdev=1)
    with pytest.raises(TypeError, match="does not take 'vall'"):
        initializer("constant", vall=1)
    assert initializer("constant", val=0.5)(torch.empty(3)).tolist() == [0.5] * 3
    with pytest.raises(ValueError, match="Received: scale=-1"):
        variance_scaling_(torch.empty(2, 2), -1)
    with pytest.raises(ValueError, match="Received: mode='fan'"):
        variance_scaling_(torch.empty(2, 2), 1, "fan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Received: distribution='gauss'"):
        variance_scaling_(torch.empty(2, 2), 1, "fan_in", "gauss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        variance_scaling_(torch.empty(4))
    with pytest.raises(ValueError, match="already registered"):
        blockzoo.init.register_initializer("normal", torch.nn.init.normal_)
