"""Activation-aware defaults: which initializer suits a layer, given the activation after it.

A layer's initial scale should preserve the variance of the signal through the
activation that follows it (He et al. 2015 for the ReLU family, Klambauer et
al. 2017 for SELU, Glorot and Bengio 2010 for tanh, sigmoid and no
activation). For GELU, SiLU and hard swish, which are not homogeneous, the
same condition is solved at unit pre-activation variance: a weight of
variance ``g**2 / fan_in`` keeps the next pre-activation's variance at 1 when
``g**2 = 1 / E[f(z)**2]`` for ``z ~ N(0, 1)`` (He et al. 2015's derivation,
which gives ``g**2 = 2`` for ReLU). ELU, CELU, Mish and Softplus keep ReLU's
gain (``kaiming_normal``) by convention: the second-moment rule is applied
only to GELU, SiLU and hard swish (it would give these four gains of their
own). blockzoo's blocks register their layers in forward order
(``conv``, ``norm``, ``act``), so the activation after a weight layer is the
next activation among its siblings, past norms and parameter-free layers such
as dropout and pooling. The same rule reads ``nn.Sequential`` models and
torchvision's blocks; a layer with no activation after it gets the linear
(Glorot) default.
"""

from __future__ import annotations

from torch import nn

from blockzoo._layer_kinds import NORM_LAYERS, WEIGHT_LAYERS
from blockzoo.init._functions import Initializer

__all__ = ["WEIGHT_LAYERS", "activation_initializer", "activation_table", "activations_after"]

#: Layers whose ``weight`` the activation-aware default initialises.
_NORMS = NORM_LAYERS

_RELU = Initializer("kaiming_normal", {"mode": "fan_in", "nonlinearity": "relu"})
_LINEAR = Initializer("xavier_uniform")
_SMOOTH_RELU = (nn.ELU, nn.CELU, nn.Mish, nn.Softplus)

#: ``1 / E[f(z)**2]`` for ``z ~ N(0, 1)``: the squared gain that keeps unit variance through ``f`` (see above).
#: GELU's has a closed form, ``E[z**2 * Phi(z)**2] = 1/3 + 1/(2 pi sqrt(3))`` (its tanh approximation's
#: differs by under 0.01%); SiLU's and hard swish's come from numerical quadrature. Rounded to four decimals.
_SECOND_MOMENT_GAINS: tuple[tuple[type[nn.Module], float], ...] = (
    (nn.GELU, 2.3517),
    (nn.SiLU, 2.8108),
    (nn.Hardswish, 3.0160),
)
_SIGMOID = (nn.Sigmoid, nn.Hardsigmoid, nn.LogSigmoid)
_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.SELU,
    nn.Tanh,
    nn.Hardtanh,
    nn.Softsign,
    *_SMOOTH_RELU,
    *(kind for kind, _ in _SECOND_MOMENT_GAINS),
    *_SIGMOID,
)


def activation_initializer(act: nn.Module | None) -> Initializer:
    """The default initializer for a weight layer followed by ``act`` (``None``: no activation).

    Example:
        >>> from torch import nn
        >>> from blockzoo.init import activation_initializer
        >>> str(activation_initializer(nn.LeakyReLU(0.2)))
        "kaiming_normal(a=0.2, mode='fan_in', nonlinearity='leaky_relu')"
        >>> str(activation_initializer(nn.SELU())), str(activation_initializer(None))
        ('lecun_normal', 'xavier_uniform')
        >>> str(activation_initializer(nn.SiLU()))
        "variance_scaling(scale=2.8108, mode='fan_in', distribution='untruncated_normal')"
    """
    for kind, scale in _SECOND_MOMENT_GAINS:
        if isinstance(act, kind):
            return Initializer(
                "variance_scaling", {"scale": scale, "mode": "fan_in", "distribution": "untruncated_normal"}
            )
    if isinstance(act, (nn.ReLU, nn.ReLU6, *_SMOOTH_RELU)):
        return _RELU
    if isinstance(act, nn.LeakyReLU):
        return Initializer("kaiming_normal", {"a": act.negative_slope, "mode": "fan_in", "nonlinearity": "leaky_relu"})
    if isinstance(act, nn.RReLU):  # the mean slope of its random range
        slope = (act.lower + act.upper) / 2
        return Initializer("kaiming_normal", {"a": slope, "mode": "fan_in", "nonlinearity": "leaky_relu"})
    if isinstance(act, nn.PReLU):  # the slope it starts from
        slope = float(act.weight.detach().float().mean()) if not act.weight.is_meta else 0.25
        return Initializer("kaiming_normal", {"a": slope, "mode": "fan_in", "nonlinearity": "leaky_relu"})
    if isinstance(act, nn.SELU):
        return Initializer("lecun_normal")
    if isinstance(act, (nn.Tanh, nn.Hardtanh, nn.Softsign)):
        return Initializer("xavier_uniform", {"gain": nn.init.calculate_gain("tanh")})
    return _LINEAR  # sigmoid-like gates and no activation: Glorot's gain of 1


def activation_table() -> list[tuple[str, str]]:
    """``(activation, default initializer)`` rows, as the docs show them.

    Example:
        >>> from blockzoo.init import activation_table
        >>> dict(activation_table())["SELU"]
        'lecun_normal'
    """
    rows = [
        ("ReLU, ReLU6", nn.ReLU()),
        ("ELU, CELU, Mish, Softplus", nn.ELU()),
        ("GELU", nn.GELU()),
        ("SiLU", nn.SiLU()),
        ("Hardswish", nn.Hardswish()),
        ("LeakyReLU(negative_slope=s)", nn.LeakyReLU(0.01)),
        ("PReLU (slope s at construction)", nn.PReLU()),
        ("RReLU(lower, upper), s = (lower + upper) / 2", nn.RReLU()),
        ("SELU", nn.SELU()),
        ("Tanh, Hardtanh, Softsign", nn.Tanh()),
        ("Sigmoid, Hardsigmoid, LogSigmoid", nn.Sigmoid()),
        ("none (or any other module)", None),
    ]
    out = []
    for label, act in rows:
        init = str(activation_initializer(act))
        if isinstance(act, (nn.LeakyReLU, nn.PReLU, nn.RReLU)):
            init = init.replace(f"a={activation_initializer(act).kwargs['a']!r}", "a=s")
        out.append((label, init))
    return out


def _is_activation(module: nn.Module) -> bool:
    return isinstance(module, _ACTIVATIONS)


def _transparent(module: nn.Module) -> bool:
    """Norms and parameter-free layers (dropout, pooling, identity) between a weight layer and its activation."""
    return isinstance(module, _NORMS) or next(module.parameters(), None) is None


def activations_after(model: nn.Module) -> dict[nn.Module, nn.Module | None]:
    """Map each weight layer inside ``model`` to the activation module that follows it, or ``None``.

    Example:
        >>> from torch import nn
        >>> from blockzoo.init import activations_after
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 2))
        >>> {type(k).__name__ + str(i): type(v).__name__ for i, (k, v) in enumerate(activations_after(net).items())}
        {'Linear0': 'Tanh', 'Linear1': 'NoneType'}
    """
    found: dict[nn.Module, nn.Module | None] = {}
    if isinstance(model, WEIGHT_LAYERS):
        found[model] = None
    for parent in model.modules():
        children = list(parent.children())
        for i, child in enumerate(children):
            if not isinstance(child, WEIGHT_LAYERS):
                continue
            act = None
            for after in children[i + 1 :]:
                if _is_activation(after):
                    act = after
                    break
                if not _transparent(after):
                    break
            found[child] = act
    return found
