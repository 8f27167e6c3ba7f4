"""The activation-aware gains of GELU, SiLU and hard swish: 1 / E[f(z)^2] for z ~ N(0, 1)."""

import math

import pytest
import torch
from torch import nn

from blockzoo.init import activation_initializer, activation_table, init_weights

# The activations written out here from their definitions, independently of torch's implementations.
_Z = torch.linspace(-40.0, 40.0, 800_001, dtype=torch.float64)
_DEFINITIONS = {
    "GELU": lambda z: z * 0.5 * torch.erfc(-z / math.sqrt(2)),  # Hendrycks and Gimpel 2016: z * Phi(z)
    "SiLU": lambda z: z / (1.0 + torch.exp(-z)),  # Elfwing et al. 2018: z * sigmoid(z)
    "Hardswish": lambda z: z * (z + 3.0).clamp(0.0, 6.0) / 6.0,  # Howard et al. 2019
}
_MODULES = {"GELU": nn.GELU(), "SiLU": nn.SiLU(), "Hardswish": nn.Hardswish()}


def second_moment(f: object) -> float:
    density = torch.exp(-(_Z**2) / 2) / math.sqrt(2 * math.pi)
    return float(torch.trapezoid(f(_Z) ** 2 * density, _Z))  # type: ignore[operator]


@pytest.mark.parametrize("name", sorted(_DEFINITIONS))
def test_gain_is_the_inverse_second_moment_under_a_unit_normal(name: str) -> None:
    init = activation_initializer(_MODULES[name])
    assert init.name == "variance_scaling"
    assert (init.kwargs["mode"], init.kwargs["distribution"]) == ("fan_in", "untruncated_normal")
    assert init.kwargs["scale"] == pytest.approx(1 / second_moment(_DEFINITIONS[name]), abs=1e-4)
    assert dict(activation_table())[name] == str(init)


def test_gelu_gain_has_a_closed_form() -> None:
    # E[z^2 Phi(z)^2] = 1/3 + 1/(2 pi sqrt 3) for z ~ N(0, 1)
    closed = 1 / (1 / 3 + 1 / (2 * math.pi * math.sqrt(3)))
    assert activation_initializer(nn.GELU()).kwargs["scale"] == pytest.approx(closed, abs=1e-4)
    assert activation_initializer(nn.GELU(approximate="tanh")).kwargs["scale"] == pytest.approx(closed, abs=1e-4)


def test_the_relu_derivation_gives_relus_gain() -> None:
    assert 1 / second_moment(lambda z: z.clamp(min=0.0)) == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("name", sorted(_MODULES))
def test_a_layer_keeps_unit_variance_through_its_activation(name: str) -> None:
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(1024, 1024, bias=False), _MODULES[name])
    init_weights(layer)
    x = _MODULES[name](torch.randn(512, 1024))  # the activation of a unit-variance pre-activation
    pre = layer[0](x)
    assert pre.var().item() == pytest.approx(1.0, rel=0.05)
