"""Initializer functions, their registry, and the moments each one promises.

The ``torch.nn.init`` set runs through torch itself; blockzoo adds Keras's
``variance_scaling_`` (and ``lecun_normal_`` / ``lecun_uniform_`` on top of it),
which torch lacks. Every registered initializer knows the mean and standard
deviation of what it draws, so :func:`~blockzoo.init.init_report` can compare
a parameter with its theory and the tests can check the draws statistically.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from blockzoo._checks import check_number
from blockzoo._names import GlobsLike, reject_unknown_keywords
from blockzoo._registry import Registry

__all__ = [
    "Initializer",
    "InitializerSpec",
    "get_initializer",
    "initializer",
    "lecun_normal_",
    "lecun_uniform_",
    "list_initializers",
    "register_initializer",
    "sparse_",
    "variance_scaling_",
]

Mode = Literal["fan_in", "fan_out", "fan_avg"]
Distribution = Literal["truncated_normal", "normal", "untruncated_normal", "uniform"]
_DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal", "uniform")

#: The std of a standard normal truncated to [-2, 2]; Keras divides by it so the
#: truncated draw keeps the requested variance.
_TRUNCATED_STD = 0.87962566103423978


def _fans(tensor: Tensor) -> tuple[int, int]:
    if tensor.dim() < 2:
        raise ValueError(
            f"fan-based initializers need a tensor with at least 2 dimensions. Received: shape={list(tensor.shape)}"
        )
    # torch's definition (its helper for it is private): a weight [out, in, *kernel] has
    # fan_in = in * prod(kernel) and fan_out = out * prod(kernel).
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _scale_fan(tensor: Tensor, mode: str) -> float:
    fan_in, fan_out = _fans(tensor)
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def variance_scaling_(
    tensor: Tensor,
    scale: float = 1.0,
    mode: Mode = "fan_in",
    distribution: Distribution = "truncated_normal",
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` with draws of variance ``scale / n``, as Keras's ``VarianceScaling``.

    ``n`` is the fan in, the fan out, or their mean (``mode``). The
    distributions are Keras's: ``"truncated_normal"``, and ``"normal"`` which
    Keras takes to mean the same, cut the draws at two standard deviations and
    rescale them so that the variance stays ``scale / n``;
    ``"untruncated_normal"`` draws from ``N(0, scale / n)``; ``"uniform"``
    draws from ``[-limit, limit]`` with ``limit = sqrt(3 * scale / n)``. A
    tensor with no elements is returned unchanged, as ``torch.nn.init`` does.

    Args:
        tensor: At least 2-D; a conv kernel's fans include its window.
        scale: Positive scaling factor of the variance.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (or ``"normal"``),
            ``"untruncated_normal"`` or ``"uniform"``.
        generator: Source of randomness; the global one when ``None``.

    Returns:
        ``tensor``, filled in place.

    Example:
        >>> import torch
        >>> from blockzoo.init import variance_scaling_
        >>> w = variance_scaling_(torch.empty(256, 1024), 2.0, "fan_in", "normal")
        >>> round(w.std().item(), 2)  # sqrt(2 / 1024)
        0.04
        >>> bool(w.abs().max() <= 2 * 0.0442 / 0.8796)  # cut at two std of the untruncated normal
        True
    """
    scale = check_number("scale", scale, low=0, low_open=True)
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg'. Received: mode={mode!r}")
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(
            "distribution must be 'truncated_normal', 'normal', 'untruncated_normal' or 'uniform'. "
            f"Received: distribution={distribution!r}"
        )
    if tensor.numel() == 0:  # no fans to divide by, and nothing to fill
        return tensor
    variance = scale / _scale_fan(tensor, mode)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return nn.init.uniform_(tensor, -limit, limit, generator=generator)
    std = math.sqrt(variance)
    if distribution == "untruncated_normal":
        return nn.init.normal_(tensor, 0.0, std, generator=generator)
    std /= _TRUNCATED_STD  # "truncated_normal" and Keras's alias "normal"
    return nn.init.trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std, generator=generator)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, *, generator: torch.Generator | None = None) -> Tensor:
    """Fill a 2-D ``tensor`` from ``N(0, std)`` and zero a ``sparsity`` fraction of each column (Martens 2010).

    Written here rather than taken from ``torch.nn.init.sparse_``, which draws
    the positions of the zeros from the global generator even when given one,
    so the same ``generator`` would not give the same tensor.

    Example:
        >>> import torch
        >>> from blockzoo.init import sparse_
        >>> w = sparse_(torch.empty(10, 3), 0.5)
        >>> (w == 0).sum(0).tolist()
        [5, 5, 5]
    """
    if tensor.dim() != 2:
        raise ValueError(f"sparse_ needs a 2-D tensor. Received: shape={list(tensor.shape)}")
    sparsity = check_number("sparsity", sparsity, low=0, high=1)
    std = check_number("std", std, low=0)
    rows = tensor.shape[0]
    zeros = math.ceil(sparsity * rows)
    with torch.no_grad():
        tensor.normal_(0.0, std, generator=generator)
        if zeros and not tensor.is_meta:
            # The first `zeros` rows of a random permutation per column, from one batch of uniform keys.
            keys = torch.rand(tensor.shape, generator=generator, device=tensor.device)
            tensor.scatter_(0, keys.argsort(dim=0)[:zeros], 0.0)
    return tensor


def lecun_normal_(tensor: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """LeCun normal: a normal truncated at two std, variance ``1 / fan_in`` (the init for SELU networks).

    A tensor with no elements is returned unchanged.

    Example:
        >>> import torch
        >>> from blockzoo.init import lecun_normal_
        >>> lecun_normal_(torch.empty(3, 4)).shape
        torch.Size([3, 4])
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", generator=generator)


def lecun_uniform_(tensor: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """LeCun uniform: ``U(-limit, limit)`` with ``limit = sqrt(3 / fan_in)``.

    A tensor with no elements is returned unchanged.

    Example:
        >>> import torch
        >>> from blockzoo.init import lecun_uniform_
        >>> w = lecun_uniform_(torch.empty(3, 12))
        >>> bool(w.abs().max() <= 0.5)
        True
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", generator=generator)


# ----------------------------------------------------------------------------- theory
# Each function gives the (mean, std) of the values an initializer writes into a
# tensor of a given shape with given arguments, or None where the result is not
# a draw with a meaningful std (eye, dirac).

Moments = Callable[..., "tuple[float, float] | None"]


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def truncated_normal_moments(mean: float, std: float, a: float, b: float) -> tuple[float, float]:
    """Mean and std of ``N(mean, std)`` truncated to ``[a, b]`` (the textbook formulas)."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    z = _cdf(beta) - _cdf(alpha)
    shift = (_phi(alpha) - _phi(beta)) / z
    var = 1 + (alpha * _phi(alpha) - beta * _phi(beta)) / z - shift * shift
    return mean + std * shift, std * math.sqrt(var)


def _uniform_m(t: Tensor, a: float = 0.0, b: float = 1.0) -> tuple[float, float]:
    return (a + b) / 2, (b - a) / math.sqrt(12)


def _normal_m(t: Tensor, mean: float = 0.0, std: float = 1.0) -> tuple[float, float]:
    return mean, std


def _trunc_normal_m(
    t: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> tuple[float, float]:
    return truncated_normal_moments(mean, std, a, b)


def _constant_m(t: Tensor, val: float = 0.0) -> tuple[float, float]:
    return val, 0.0


def _xavier_uniform_m(t: Tensor, gain: float = 1.0) -> tuple[float, float]:
    fan_in, fan_out = _fans(t)
    return 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out))


def _kaiming_m(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator: Any = None
) -> tuple[float, float]:
    gain = nn.init.calculate_gain(nonlinearity, a)  # type: ignore[arg-type]
    return 0.0, gain / math.sqrt(_scale_fan(t, mode))


def _orthogonal_m(t: Tensor, gain: float = 1.0) -> tuple[float, float]:
    # Orthonormal rows (or columns): the squares sum to min(rows, cols), so the mean square is that over the size.
    rows = t.shape[0]
    cols = t.numel() // rows
    return 0.0, gain * math.sqrt(min(rows, cols) / (rows * cols))


def _sparse_m(t: Tensor, sparsity: float, std: float = 0.01) -> tuple[float, float]:
    rows = t.shape[0]
    zeros = math.ceil(sparsity * rows)
    return 0.0, std * math.sqrt((rows - zeros) / rows)


def _variance_scaling_m(
    t: Tensor, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal"
) -> tuple[float, float] | None:
    if t.numel() == 0:  # left unchanged: there is no draw
        return None
    return 0.0, math.sqrt(scale / _scale_fan(t, mode))


def _lecun_m(t: Tensor) -> tuple[float, float] | None:
    return _variance_scaling_m(t)


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class InitializerSpec:
    """A registered initializer: the in-place function and its theory.

    Attributes:
        name: The registered name.
        fn: ``fn(tensor, *args, generator=None, **kwargs)``, in place.
        moments: ``moments(tensor, **kwargs) -> (mean, std)`` of the values
            ``fn`` writes, or ``None`` when unknown.
        random: Whether ``fn`` draws random numbers (and takes ``generator``).

    Example:
        >>> from blockzoo.init import get_initializer
        >>> spec = get_initializer("xavier_uniform")
        >>> spec.name, spec.random
        ('xavier_uniform', True)
    """

    name: str
    fn: Callable[..., Tensor]
    moments: Moments | None = None
    random: bool = True


_REGISTRY: Registry[InitializerSpec] = Registry("initializer", list_call="blockzoo.init.list_initializers()")


def register_initializer(
    name: str, fn: Callable[..., Tensor], *, moments: Moments | None = None, random: bool = True
) -> Callable[..., Tensor]:
    """Register an in-place initializer under ``name``; returns ``fn``.

    Args:
        name: A new name (a duplicate raises ``ValueError``).
        fn: ``fn(tensor, **kwargs)`` filling ``tensor`` in place; it must take
            ``generator=`` when ``random`` is true.
        moments: Optional ``moments(tensor, **kwargs) -> (mean, std)``; lets
            :func:`~blockzoo.init.init_report` show the expected std.
        random: Whether ``fn`` draws random numbers.

    Example:
        >>> import torch
        >>> from blockzoo.init import init_weights, register_initializer
        >>> def halves_(tensor, *, generator=None):
        ...     return torch.nn.init.constant_(tensor, 0.5)
        >>> _ = register_initializer("halves_demo", halves_, random=False)
        >>> layer = torch.nn.Linear(2, 2)
        >>> _ = init_weights(layer, "halves_demo")
        >>> layer.weight.unique().tolist()
        [0.5]
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable. Received: fn={fn!r}")
    _REGISTRY.register(name, InitializerSpec(name, fn, moments, random))
    return fn


def list_initializers(include: GlobsLike = "*", exclude: GlobsLike = None) -> list[str]:
    """Sorted names of the registered initializers, filtered by globs.

    Example:
        >>> from blockzoo.init import list_initializers
        >>> list_initializers("kaiming*")
        ['kaiming_normal', 'kaiming_uniform']
    """
    return _REGISTRY.list(include, exclude)


def get_initializer(name: str) -> InitializerSpec:
    """The :class:`InitializerSpec` registered under ``name`` (a trailing ``_`` is accepted).

    Raises:
        UnknownNameError: nobody registered ``name``; close matches are suggested.

    Example:
        >>> from blockzoo.init import get_initializer
        >>> spec = get_initializer("kaiming_normal_")
        >>> spec.name, spec.random
        ('kaiming_normal', True)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string. Received: name={name!r}")
    return _REGISTRY.get(name[:-1] if name.endswith("_") and name[:-1] in _REGISTRY else name)


def _deterministic(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Accept and ignore ``generator=``, so every registered initializer is called the same way."""

    @functools.wraps(fn)  # inspect.signature then shows fn's own arguments
    def run(tensor: Tensor, *args: Any, generator: torch.Generator | None = None, **kwargs: Any) -> Tensor:
        return fn(tensor, *args, **kwargs)

    return run


def _xavier_normal(tensor: Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None) -> Tensor:
    return nn.init.xavier_normal_(tensor, gain, generator=generator)


_RANDOM: dict[str, tuple[Callable[..., Tensor], Moments]] = {
    "uniform": (nn.init.uniform_, _uniform_m),
    "normal": (nn.init.normal_, _normal_m),
    "trunc_normal": (nn.init.trunc_normal_, _trunc_normal_m),
    "xavier_uniform": (nn.init.xavier_uniform_, _xavier_uniform_m),
    "xavier_normal": (_xavier_normal, _xavier_uniform_m),
    "kaiming_uniform": (nn.init.kaiming_uniform_, _kaiming_m),
    "kaiming_normal": (nn.init.kaiming_normal_, _kaiming_m),
    "orthogonal": (nn.init.orthogonal_, _orthogonal_m),
    "sparse": (sparse_, _sparse_m),
    "variance_scaling": (variance_scaling_, _variance_scaling_m),
    "lecun_normal": (lecun_normal_, _lecun_m),
    "lecun_uniform": (lecun_uniform_, _lecun_m),
}
for _name, (_fn, _m) in _RANDOM.items():
    register_initializer(_name, _fn, moments=_m)
register_initializer("constant", _deterministic(nn.init.constant_), moments=_constant_m, random=False)
register_initializer("zeros", _deterministic(nn.init.zeros_), moments=lambda t: (0.0, 0.0), random=False)
register_initializer("ones", _deterministic(nn.init.ones_), moments=lambda t: (1.0, 0.0), random=False)
register_initializer("eye", _deterministic(nn.init.eye_), random=False)
register_initializer("dirac", _deterministic(nn.init.dirac_), random=False)


@dataclass(frozen=True)
class Initializer:
    """A registered initializer with its arguments bound: ``Initializer("normal", {"std": 0.01})``.

    Calling it fills a tensor in place; :func:`initializer` builds one and
    checks the arguments. ``str()`` gives the form shown in reports.

    Attributes:
        name: The registered name.
        kwargs: Keyword arguments passed on every call.

    Example:
        >>> import torch
        >>> from blockzoo.init import initializer
        >>> init = initializer("normal", std=0.01)
        >>> str(init)
        'normal(std=0.01)'
        >>> init.moments(torch.empty(3, 3))
        (0.0, 0.01)
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> InitializerSpec:
        """The registered :class:`InitializerSpec`."""
        return get_initializer(self.name)

    def __call__(self, tensor: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        spec = self.spec
        if spec.random:
            return spec.fn(tensor, generator=generator, **self.kwargs)
        return spec.fn(tensor, **self.kwargs)

    def moments(self, tensor: Tensor) -> tuple[float, float] | None:
        """``(mean, std)`` the initializer promises for ``tensor``'s shape, or ``None``."""
        moments = self.spec.moments
        return None if moments is None else moments(tensor, **self.kwargs)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})" if args else self.name


def initializer(name: str, **kwargs: Any) -> Initializer:
    """Bind arguments to the registered initializer ``name``, checking them against its signature.

    Args:
        name: A registered name (see :func:`list_initializers`).
        **kwargs: Its keyword arguments, such as ``std=`` or ``mode=``.

    Raises:
        UnknownNameError: ``name`` is not registered.
        TypeError: a keyword the initializer does not take.

    Example:
        >>> from blockzoo.init import initializer
        >>> str(initializer("kaiming_normal", mode="fan_out", nonlinearity="relu"))
        "kaiming_normal(mode='fan_out', nonlinearity='relu')"
    """
    spec = get_initializer(name)
    params = inspect.signature(spec.fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [n for n, p in params.items() if n not in ("tensor", "generator") and p.kind is not p.VAR_POSITIONAL]
        reject_unknown_keywords(kwargs, accepted, owner=f"initializer {spec.name!r}")
    return Initializer(spec.name, dict(kwargs))
