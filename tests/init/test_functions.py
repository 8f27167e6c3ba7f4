"""Initializer draws against theory written out here, independently of blockzoo's own moments."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import blockzoo
from blockzoo.init import get_initializer, initializer, list_initializers, variance_scaling_
from support import DEVICES

MIN_DRAWS = 65536

# The statistical checks must hold for any seed: hypothesis draws the seeds afresh in every run unless a
# profile derandomizes it. Bonferroni: a run makes at most CHECKS of them, so if each check fails a correct
# initializer with probability ALPHA = RUN_ALPHA / CHECKS, a whole run fails by chance with probability at
# most RUN_ALPHA. Each check is two-sided on an asymptotically normal estimate, so it allows Z standard
# errors, with P(|N(0, 1)| > Z) = ALPHA, that is Z = Phi^-1(1 - ALPHA / 2).
# CHECKS: hypothesis runs at most 100 examples a test (its default; the profiles here run 10 or 25),
# and each assert_moments call makes 2 checks (mean and std); one example makes at most
#   test_kaiming 2 + test_xavier 2 + test_variance_scaling_matches_keras_formula 2 + test_trunc_normal 2
#   + test_uniform_normal_and_lecun 8 + test_sparse 2 = 18 checks,
# and the device test makes 2 for each of the 12 random initializers on each of 2 devices.
RUN_ALPHA = 1e-3
CHECKS = 100 * 18 + 2 * 12 * 2
ALPHA = RUN_ALPHA / CHECKS  # 5.4e-7 per check
Z = NormalDist().inv_cdf(1 - ALPHA / 2)  # 5.0 standard errors
# With MIN_DRAWS draws the std check allows a relative error of Z * sqrt((kurtosis - 1) / (4 * MIN_DRAWS)):
# 1.4% for a normal, 0.9% for a uniform. A wrong gain or fan is off by far more (sqrt(2) for relu's gain).


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
    """Sample mean and std within Z standard errors of the theory (two checks)."""
    x = t.detach().double().flatten()
    n = x.numel()
    assert n >= MIN_DRAWS
    m, s = x.mean().item(), x.std().item()
    m4 = ((x - m) ** 4).mean().item()
    se_mean = s / math.sqrt(n)
    se_std = math.sqrt(max(m4 - s**4, 0.0) / n) / (2 * s)  # the delta method on the sample variance
    assert abs(m - mean) <= Z * se_mean, (m, mean, se_mean)
    assert abs(s - std) <= Z * se_std, (s, std, se_std)


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
    # the bounds as the float32 tensor holds them: torch clamps to them, and the nearest float32 may lie past a or b
    assert torch.tensor(a, dtype=t.dtype) <= t.min()
    assert t.max() <= torch.tensor(b, dtype=t.dtype)
    # Mean by integration too: shift the grid to the mean.
    cut_std = truncated_std(std, a - mean, b - mean)
    steps = 20_000
    h = (b - a) / steps
    xs = [a + (i + 0.5) * h for i in range(steps)]
    ws = [math.exp(-0.5 * ((x - mean) / std) ** 2) for x in xs]
    cut_mean = sum(w * x for w, x in zip(ws, xs, strict=True)) / sum(ws)
    assert_moments(t, cut_mean, cut_std)
    assert spec.moments(t) == pytest.approx((cut_mean, cut_std), rel=1e-3, abs=1e-4)


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


def torch_zero_count(rows: int, sparsity: float) -> int:
    """How many zeros torch's own ``sparse_`` puts in each column (its definition of the count)."""
    col = torch.nn.init.sparse_(torch.empty(rows, 1, dtype=torch.float64), sparsity)
    return int((col == 0).sum())


@given(seed=st.integers(0, 2**31), sparsity=st.floats(0.05, 0.9), rows=st.integers(16, 256))
def test_sparse(seed, sparsity, rows) -> None:  # type: ignore[no-untyped-def]
    """Exactly torch's count of zeros per column, and N(0, std) elsewhere.

    In float64: a float32 normal draw is exactly 0 about once in 1.2e7 draws (measured), which would make a
    kept value look dropped; a float64 one practically never is.
    """
    zeros = torch_zero_count(rows, sparsity)
    kept = rows - zeros
    cols = -(-MIN_DRAWS // kept)  # enough kept draws for assert_moments
    spec = initializer("sparse", sparsity=sparsity, std=0.5)
    t = spec(torch.empty(rows, cols, dtype=torch.float64), generator=torch.Generator().manual_seed(seed))
    dropped = t == 0
    assert dropped.sum(0).eq(zeros).all(), dropped.sum(0).unique()  # exactly torch's count, in every column
    if 0 < zeros < rows:  # each column draws its own rows to zero
        assert dropped.unique(dim=1).shape[1] > 1
    assert_moments(t[~dropped], 0.0, 0.5)  # the kept values are the N(0, std) draws
    assert spec.moments(t) == pytest.approx((0.0, 0.5 * math.sqrt(kept / rows)))


@pytest.mark.parametrize(
    ("rows", "sparsity"),
    [(10, 0.0), (10, 1.0), (10, 0.3), (10, 0.7), (100, 0.07), (7, 0.5), (1, 0.5), (3, 1 / 3)],
)
def test_sparse_counts_zeros_as_torch_does(rows: int, sparsity: float) -> None:
    """Edge cases of the rounding: 0.07 * 100 is 7.000000000000001 in floating point, so torch zeroes 8."""
    t = blockzoo.init.sparse_(torch.empty(rows, 50, dtype=torch.float64), sparsity, std=0.5)
    assert (t == 0).sum(0).tolist() == [torch_zero_count(rows, sparsity)] * 50


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


#: What each registered random initializer draws into a (256, 256) tensor (fan_in = fan_out = 256) with these
#: arguments: torch's documented defaults (kaiming: a=0, leaky_relu, so gain sqrt(2)), written out by hand.
ON_DEVICE: dict[str, tuple[dict[str, float], tuple[float, float]]] = {
    "uniform": ({}, (0.5, 1 / math.sqrt(12))),
    "normal": ({}, (0.0, 1.0)),
    "trunc_normal": ({}, (0.0, truncated_std(1.0, -2.0, 2.0))),
    "xavier_uniform": ({}, (0.0, math.sqrt(2 / 512))),
    "xavier_normal": ({}, (0.0, math.sqrt(2 / 512))),
    "kaiming_uniform": ({}, (0.0, math.sqrt(2 / 256))),
    "kaiming_normal": ({}, (0.0, math.sqrt(2 / 256))),
    "orthogonal": ({}, (0.0, 1 / 16)),  # orthonormal rows: each row's squares sum to 1
    "sparse": ({"sparsity": 0.25, "std": 0.1}, (0.0, 0.1 * math.sqrt(192 / 256))),  # 64 of 256 rows zeroed
    "variance_scaling": ({}, (0.0, 1 / 16)),
    "lecun_normal": ({}, (0.0, 1 / 16)),
    "lecun_uniform": ({}, (0.0, 1 / 16)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(ON_DEVICE))
def test_registered_initializers_draw_on_the_device_from_its_generator(name: str, device: str) -> None:
    kwargs, (mean, std) = ON_DEVICE[name]
    init = initializer(name, **kwargs)

    def draw(seed: int) -> torch.Tensor:
        return init(torch.empty(256, 256, device=device), generator=torch.Generator(device=device).manual_seed(seed))

    a, b, c = draw(3), draw(3), draw(4)
    assert a.device.type == device
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert_moments(a, mean, std)


def test_every_random_initializer_is_checked_on_each_device() -> None:
    assert set(ON_DEVICE) == {n for n in list_initializers() if get_initializer(n).random}


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
