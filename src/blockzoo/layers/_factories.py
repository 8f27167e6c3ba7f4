"""Name -> factory registries for the layers inside blocks, and their resolver.

Each kind of layer has one calling convention, which a user's callable must
follow too:

========  ==========================================================  =========================
kind      called as                                                   example of a callable
========  ==========================================================  =========================
act       ``factory()``                                               ``nn.GELU``
norm      ``factory(num_features, device=..., dtype=...)``            ``partial(nn.GroupNorm, 4)``
pool      ``factory()`` or ``factory(size)`` (window or output size)  ``nn.MaxPool2d``
dropout   ``factory(p)``                                              ``nn.AlphaDropout``
conv      ``factory(in_channels, out_channels, kernel_size, **kw)``   ``nn.Conv2d``
========  ==========================================================  =========================

A registered factory whose signature has a ``spatial_dims`` parameter receives
it from :func:`resolve_layer`, so one name can stand for ``BatchNorm1d``,
``BatchNorm2d`` or ``BatchNorm3d``. ``spatial_dims=0`` means feature vectors
``[N, C]`` (as in an MLP).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict

import torch
from torch import nn

from blockzoo._checks import check_spatial_dims
from blockzoo._names import GlobsLike, close_matches, format_choices
from blockzoo._registry import Registry
from blockzoo._types import DeviceLike
from blockzoo.errors import UnknownNameError
from blockzoo.layers._modules import ChannelLayerNorm, GlobalPool, InstanceNorm2d, InstanceNorm3d

__all__ = ["LayerKind", "LayerSpec", "Placement", "build_layer", "list_layers", "register_layer", "resolve_layer"]

LayerKind = Literal["act", "norm", "pool", "dropout", "conv"]


class Placement(TypedDict):
    """Where a block creates its tensors: the ``device=`` and ``dtype=`` it passes on.

    Example:
        >>> import torch
        >>> from blockzoo.layers import Placement
        >>> placement: Placement = {"device": "meta", "dtype": torch.float16}
        >>> weight = torch.nn.Linear(2, 3, **placement).weight
        >>> weight.device, weight.dtype
        (device(type='meta'), torch.float16)
    """

    device: DeviceLike
    dtype: torch.dtype | None


LayerSpec = str | Callable[..., nn.Module] | None
Factory = Callable[..., nn.Module]

_REGISTRIES: dict[str, Registry[Factory]] = {
    kind: Registry(f"{kind} layer", list_call=f"blockzoo.list_layers({kind!r})")
    for kind in ("act", "norm", "pool", "dropout", "conv")
}


def _registry(kind: str) -> Registry[Factory]:
    if kind not in _REGISTRIES:
        hint = close_matches(str(kind), _REGISTRIES)
        did_you_mean = f" Did you mean {format_choices(hint)}?" if hint else ""
        raise UnknownNameError(
            f"Unknown layer kind {kind!r}.{did_you_mean} The kinds are {format_choices(_REGISTRIES)}. "
            f"Received: kind={kind!r}"
        )
    return _REGISTRIES[kind]


def register_layer(kind: LayerKind, name: str, *, aliases: Sequence[str] = ()) -> Callable[[Factory], Factory]:
    """Register a layer factory under ``name`` for one kind; use as a decorator.

    The factory must follow the kind's calling convention (see the module
    docs); give it a ``spatial_dims`` parameter to receive the block's.

    Args:
        kind: ``"act"``, ``"norm"``, ``"pool"``, ``"dropout"`` or ``"conv"``.
        name: The new name; a name that is taken raises ``ValueError``.
        aliases: Other names for the same factory.

    Returns:
        A decorator that registers the factory and returns it unchanged.

    Example:
        >>> import torch.nn as nn
        >>> import blockzoo
        >>> @blockzoo.register_layer("act", "softsign_demo")
        ... def softsign() -> nn.Module:
        ...     return nn.Softsign()
        >>> blockzoo.ConvNormAct(3, 8, act_layer="softsign_demo").act
        Softsign()
    """
    registry = _registry(kind)

    def decorator(factory: Factory) -> Factory:
        if not callable(factory):
            raise TypeError(f"register_layer needs a callable factory. Received: factory={factory!r}")
        registry.register(name, factory, aliases=aliases)
        return factory

    return decorator


def list_layers(kind: LayerKind, include: GlobsLike = "*", exclude: GlobsLike = None) -> list[str]:
    """Sorted names registered for ``kind``, filtered by globs.

    Example:
        >>> import blockzoo
        >>> blockzoo.list_layers("norm")
        ['batchnorm', 'groupnorm', 'instancenorm', 'layernorm']
        >>> blockzoo.list_layers("act", include="*elu")
        ['celu', 'elu', 'gelu', 'leaky_relu', 'prelu', 'relu', 'selu']
    """
    return _registry(kind).list(include, exclude)


def _takes_inplace(factory: Callable[..., Any]) -> bool:
    if isinstance(factory, functools.partial) and "inplace" in factory.keywords:
        return False  # the caller chose
    target = factory.func if isinstance(factory, functools.partial) else factory
    try:
        return "inplace" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


@functools.cache
def _takes_spatial_dims(factory: Callable[..., Any]) -> bool:
    try:
        return "spatial_dims" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def resolve_layer(kind: LayerKind, spec: LayerSpec, *, spatial_dims: int = 2, argname: str | None = None) -> Factory:
    """Turn a registered name, a callable or ``None`` into a layer factory.

    Args:
        kind: ``"act"``, ``"norm"``, ``"pool"``, ``"dropout"`` or ``"conv"``.
        spec: A registered name, a callable that returns a module (use
            :func:`functools.partial` for options), or ``None`` for
            ``nn.Identity``.
        spatial_dims: 0 for feature vectors ``[N, C]``, else 1, 2 or 3.
        argname: The argument name to use in error messages (default
            ``f"{kind}_layer"``).

    Returns:
        A factory following the kind's calling convention.

    Raises:
        UnknownNameError: ``spec`` is a name nobody registered.
        TypeError: ``spec`` is neither a name, a callable nor ``None``, or is
            a module instance rather than something that makes one.
        ValueError: ``spatial_dims`` is not 0, 1, 2 or 3.

    Example:
        >>> import blockzoo
        >>> blockzoo.resolve_layer("norm", "batchnorm", spatial_dims=3)(16)
        BatchNorm3d(16, eps=1e-05, momentum=0.1, ...)
        >>> blockzoo.resolve_layer("act", None)()
        Identity()
    """
    registry = _registry(kind)
    arg = argname or f"{kind}_layer"
    check_spatial_dims(spatial_dims, (0, 1, 2, 3))
    if spec is None:
        return nn.Identity
    if isinstance(spec, str):
        factory = registry.get(spec)
        if _takes_spatial_dims(factory):
            return functools.partial(factory, spatial_dims=spatial_dims)
        return factory
    if isinstance(spec, nn.Module):
        raise TypeError(
            f"{arg} must make a new module each time it is called, not be a module instance: pass "
            f"the class (nn.{type(spec).__name__}) or a functools.partial of it. "
            f"Received: {arg}={spec!r}"
        )
    if callable(spec):
        return spec
    raise TypeError(
        f"{arg} must be a registered name (see blockzoo.list_layers({kind!r})), a callable that "
        f"returns an nn.Module, or None. Received: {arg}={spec!r} ({type(spec).__name__})"
    )


def _by_dims(spatial_dims: int, classes: Mapping[int, type[nn.Module]], what: str) -> type[nn.Module]:
    if spatial_dims not in classes:
        raise ValueError(
            f"{what} is defined for spatial_dims in {sorted(classes)}. Received: spatial_dims={spatial_dims}"
        )
    return classes[spatial_dims]


# --- activations ------------------------------------------------------------------

_ACTS: dict[str, Factory] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "celu": nn.CELU,
    "gelu": nn.GELU,
    "gelu_tanh": functools.partial(nn.GELU, approximate="tanh"),
    "mish": nn.Mish,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "prelu": nn.PReLU,
    "identity": nn.Identity,
}
for _name, _factory in _ACTS.items():
    _REGISTRIES["act"].register(_name, _factory)
_REGISTRIES["act"].register("silu", nn.SiLU, aliases=("swish",))


# --- norms ------------------------------------------------------------------------


@register_layer("norm", "batchnorm")
def _batchnorm(num_features: int, *, spatial_dims: int = 2, **kwargs: Any) -> nn.Module:
    # BatchNorm1d covers both feature vectors [N, C] and 1-D maps [N, C, L].
    cls = _by_dims(
        spatial_dims, {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}, "batchnorm"
    )
    return cls(num_features, **kwargs)


@register_layer("norm", "groupnorm")
def _groupnorm(num_features: int, *, num_groups: int | None = None, **kwargs: Any) -> nn.Module:
    if num_groups is None:
        # the largest divisor of the channels that is at most 32 (Wu and He 2018 use 32)
        num_groups = max(g for g in range(1, min(32, num_features) + 1) if num_features % g == 0)
    return nn.GroupNorm(num_groups, num_features, **kwargs)


@register_layer("norm", "layernorm")
def _layernorm(num_features: int, *, spatial_dims: int = 2, **kwargs: Any) -> nn.Module:
    if spatial_dims == 0:
        return nn.LayerNorm(num_features, **kwargs)
    return ChannelLayerNorm(num_features, **kwargs)


@register_layer("norm", "instancenorm")
def _instancenorm(num_features: int, *, spatial_dims: int = 2, **kwargs: Any) -> nn.Module:
    # blockzoo's 2-D and 3-D classes keep channels_last memory, which torch's do not.
    cls = _by_dims(spatial_dims, {1: nn.InstanceNorm1d, 2: InstanceNorm2d, 3: InstanceNorm3d}, "instancenorm")
    return cls(num_features, **kwargs)


# --- pooling ----------------------------------------------------------------------

_MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_ADAPTIVE_AVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_ADAPTIVE_MAX = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}


@register_layer("pool", "max")
def _max_pool(size: int = 2, *, spatial_dims: int = 2) -> nn.Module:
    return _by_dims(spatial_dims, _MAX, "max pooling")(size)


@register_layer("pool", "avg")
def _avg_pool(size: int = 2, *, spatial_dims: int = 2) -> nn.Module:
    return _by_dims(spatial_dims, _AVG, "avg pooling")(size)


@register_layer("pool", "adaptive_avg")
def _adaptive_avg_pool(size: int = 1, *, spatial_dims: int = 2) -> nn.Module:
    return _by_dims(spatial_dims, _ADAPTIVE_AVG, "adaptive avg pooling")(size)


@register_layer("pool", "adaptive_max")
def _adaptive_max_pool(size: int = 1, *, spatial_dims: int = 2) -> nn.Module:
    return _by_dims(spatial_dims, _ADAPTIVE_MAX, "adaptive max pooling")(size)


def _global(mode: str) -> Factory:
    def factory(size: int | None = None, *, spatial_dims: int = 2) -> nn.Module:
        if size not in (None, 1):
            raise ValueError(f"global pooling always pools to one value per channel. Received: size={size!r}")
        _by_dims(spatial_dims, _MAX, "global pooling")
        return GlobalPool(mode, spatial_dims)

    return factory


_REGISTRIES["pool"].register("global_avg", _global("avg"))
_REGISTRIES["pool"].register("global_max", _global("max"))


# --- dropout and conv -------------------------------------------------------------

_REGISTRIES["dropout"].register("dropout", nn.Dropout)
_REGISTRIES["dropout"].register("alpha_dropout", nn.AlphaDropout)


@register_layer("dropout", "channel_dropout")
def _channel_dropout(p: float = 0.5, *, spatial_dims: int = 2) -> nn.Module:
    return _by_dims(spatial_dims, {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}, "channel_dropout")(p)


@register_layer("conv", "conv")
def _conv(in_channels: int, out_channels: int, kernel_size: Any, *, spatial_dims: int = 2, **kwargs: Any) -> nn.Module:
    cls = _by_dims(spatial_dims, {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}, "conv")
    return cls(in_channels, out_channels, kernel_size, **kwargs)


@register_layer("conv", "conv_transpose")
def _conv_transpose(
    in_channels: int, out_channels: int, kernel_size: Any, *, spatial_dims: int = 2, **kwargs: Any
) -> nn.Module:
    cls = _by_dims(
        spatial_dims, {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}, "conv_transpose"
    )
    return cls(in_channels, out_channels, kernel_size, **kwargs)


def build_layer(
    kind: LayerKind,
    spec: LayerSpec,
    *args: Any,
    spatial_dims: int = 2,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
    argname: str | None = None,
    inplace: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Resolve ``spec`` and call the factory once, on ``device`` and in ``dtype``.

    Norm and conv factories receive ``device`` and ``dtype`` (when given) as
    keyword arguments; a layer of another kind that holds tensors (``PReLU``)
    is moved afterwards. ``inplace=True`` asks an activation to overwrite its
    input, which blocks do where that input is a tensor they made themselves
    (as torchvision does); it is passed only to factories that take an
    ``inplace`` argument and that were not given one already.

    Raises:
        TypeError: the factory did not return an ``nn.Module``.

    Example:
        >>> from blockzoo.layers import build_layer
        >>> build_layer("norm", "groupnorm", 16, dtype=torch.float64).weight.dtype
        torch.float64
    """
    factory = resolve_layer(kind, spec, spatial_dims=spatial_dims, argname=argname)
    placement = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
    if inplace and kind == "act" and _takes_inplace(factory):
        kwargs = {"inplace": True, **kwargs}
    layer: object = factory(*args, **kwargs, **placement) if kind in ("norm", "conv") else factory(*args, **kwargs)
    if not isinstance(layer, nn.Module):
        arg = argname or f"{kind}_layer"
        raise TypeError(
            f"{arg} must return an nn.Module when called. Received: {arg}={spec!r}, which returned "
            f"{type(layer).__name__}"
        )
    if (
        placement
        and kind not in ("norm", "conv")
        and (next(layer.parameters(), None) is not None or next(layer.buffers(), None) is not None)
    ):
        layer = layer.to(device=device, dtype=dtype)
    return layer
