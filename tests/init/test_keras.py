"""Keras semantics of variance_scaling_, lecun_normal_ and lecun_uniform_.

The expected values are Keras's documented formulas, written out here. The
statistical bounds hold for any seed: each check allows Z standard errors, so
that a correct initializer fails one with probability below 1e-9, and a run
makes a few hundred checks at most.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from blockzoo.init import initializer, lecun_normal_, lecun_uniform_, variance_scaling_

Z = 6.1  # P(|N(0, 1)| > 6.1) ~ 1e-9
KERAS_TRUNCATION_STD = 0.87962566103423978  # std of a standard normal cut to [-2, 2]
SHAPES = [(512, 512), (256, 1024), (1024, 256), (64, 32, 4, 4), (16, 64, 16, 16)]  # 262144 elements each


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def keras_std(shape: tuple[int, ...], scale: float, mode: str) -> float:
    fan_in, fan_out = fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return math.sqrt(scale / n)


def check_moments(t: torch.Tensor, std: float, kurtosis: float) -> None:
    """Mean 0 and std ``std``, within Z standard errors for a distribution of the given kurtosis.

    The standard error of the sample std is ``std * sqrt((kurtosis - 1) / (4 n))`` (delta method).
    """
    x = t.double().flatten()
    n = x.numel()
    se_mean = std / math.sqrt(n)
    se_std = std * math.sqrt((kurtosis - 1) / (4 * n))
    assert abs(x.mean().item()) <= Z * se_mean, (x.mean().item(), se_mean)
    assert abs(x.std().item() - std) <= Z * se_std, (x.std().item(), std, se_std)


def truncated_kurtosis(cut: float) -> float:
    """Kurtosis of a standard normal cut to [-cut, cut], from the textbook moments."""
    phi = math.exp(-0.5 * cut * cut) / math.sqrt(2 * math.pi)
    z = math.erf(cut / math.sqrt(2))
    m2 = 1 - 2 * cut * phi / z
    m4 = 3 * m2 - 2 * cut**3 * phi / z
    return m4 / m2**2


KURTOSIS = {"normal": 3.0, "uniform": 9 / 5, "truncated": truncated_kurtosis(2.0)}


def test_the_truncation_constants() -> None:
    phi = math.exp(-2) / math.sqrt(2 * math.pi)
    z = math.erf(2 / math.sqrt(2))
    assert math.sqrt(1 - 4 * phi / z) == pytest.approx(KERAS_TRUNCATION_STD, rel=1e-12)
    assert 1.8 < KURTOSIS["truncated"] < 3.0


@given(
    shape=st.sampled_from(SHAPES),
    seed=st.integers(0, 2**63 - 1),
    scale=st.floats(0.1, 4.0),
    mode=st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
    distribution=st.sampled_from(["truncated_normal", "normal", "untruncated_normal", "uniform"]),
)
def test_variance_scaling_follows_keras(
    shape: tuple[int, ...], seed: int, scale: float, mode: str, distribution: str
) -> None:
    t = variance_scaling_(
        torch.empty(shape),
        scale,
        mode,
        distribution,
        generator=torch.Generator().manual_seed(seed),  # type: ignore[arg-type]
    )
    std = keras_std(shape, scale, mode)
    biggest = t.abs().max().item()
    if distribution == "uniform":
        check_moments(t, std, KURTOSIS["uniform"])
        assert biggest <= math.sqrt(3) * std * (1 + 1e-6)
    elif distribution == "untruncated_normal":
        check_moments(t, std, KURTOSIS["normal"])
        # 262144 normal draws all within 2.27 std: probability 0.977 ** 262144, which is 0
        assert biggest > 2 * std / KERAS_TRUNCATION_STD
    else:  # Keras maps "normal" to "truncated_normal": cut at two std of the untruncated normal, then rescaled
        check_moments(t, std, KURTOSIS["truncated"])
        assert biggest <= 2 * std / KERAS_TRUNCATION_STD * (1 + 1e-6)


@given(seed=st.integers(0, 2**63 - 1), scale=st.floats(0.1, 4.0))
def test_normal_is_truncated_normal_and_untruncated_is_a_plain_normal(seed: int, scale: float) -> None:
    def draw(distribution: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return variance_scaling_(torch.empty(64, 32), scale, "fan_in", distribution, generator=g)  # type: ignore[arg-type]

    assert torch.equal(draw("normal"), draw("truncated_normal"))
    plain = torch.empty(64, 32).normal_(0.0, math.sqrt(scale / 32), generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(draw("untruncated_normal"), plain)


@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**63 - 1))
def test_lecun_initializers(shape: tuple[int, ...], seed: int) -> None:
    std = keras_std(shape, 1.0, "fan_in")
    normal = lecun_normal_(torch.empty(shape), generator=torch.Generator().manual_seed(seed))
    check_moments(normal, std, KURTOSIS["truncated"])
    assert normal.abs().max().item() <= 2 * std / KERAS_TRUNCATION_STD * (1 + 1e-6)
    uniform = lecun_uniform_(torch.empty(shape), generator=torch.Generator().manual_seed(seed))
    check_moments(uniform, std, KURTOSIS["uniform"])
    assert uniform.abs().max().item() <= math.sqrt(3) * std * (1 + 1e-6)


EMPTY_SHAPES = [(0,), (0, 5), (5, 0), (0, 3, 3, 3), (4, 0, 3, 3), (4, 3, 0, 3)]


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "untruncated_normal", "uniform"])
def test_variance_scaling_leaves_an_empty_tensor_unchanged(
    shape: tuple[int, ...], mode: str, distribution: str
) -> None:
    t = torch.empty(shape)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert variance_scaling_(t, 2.0, mode, distribution, generator=g) is t  # type: ignore[arg-type]
    assert t.shape == shape
    assert torch.equal(g.get_state(), state)  # nothing drawn


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("name", ["lecun_normal", "lecun_uniform", "variance_scaling"])
def test_lecun_and_registry_leave_an_empty_tensor_unchanged(shape: tuple[int, ...], name: str) -> None:
    t = torch.empty(shape)
    init = initializer(name)
    assert init(t) is t
    assert init.moments(t) is None
    fn = {"lecun_normal": lecun_normal_, "lecun_uniform": lecun_uniform_, "variance_scaling": variance_scaling_}[name]
    assert fn(t) is t


def test_empty_tensors_still_have_their_arguments_checked() -> None:
    with pytest.raises(
        ValueError,
        match=r"distribution must be 'truncated_normal', 'normal', 'untruncated_normal' or 'uniform'\. "
        r"Received: distribution='gauss'",
    ):
        variance_scaling_(torch.empty(0, 5), 1.0, "fan_in", "gauss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"scale must be a finite number > 0\. Received: scale=0"):
        variance_scaling_(torch.empty(0, 5), 0)
