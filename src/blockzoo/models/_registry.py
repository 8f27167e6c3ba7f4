"""The model registry: register_model, create_model, list_models, model_info."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from blockzoo._checks import is_int
from blockzoo._names import GlobsLike, reject_unknown_keywords
from blockzoo._registry import Registry

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model.

    Attributes:
        name: The registered name.
        family: The family (``"resnet"``, ``"vgg"``, ...).
        paper: The paper it comes from.
        input_size: Default input size ``(C, H, W)``.
        num_params: Parameters of the default configuration.
        min_input_size: The smallest ``(H, W)`` the model takes, where it
            was recorded (torchvision's ``min_size``); ``None`` otherwise.

    Example:
        >>> from blockzoo import model_info
        >>> info = model_info("resnet20")
        >>> info.family, info.input_size, info.num_params
        ('cifar_resnet', (3, 32, 32), 269722)
    """

    name: str
    family: str
    paper: str
    input_size: tuple[int, ...]
    num_params: int = field(default=0)
    min_input_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Entry:
    builder: Builder
    family: str
    paper: str
    input_size: tuple[int, ...]
    min_input_size: tuple[int, int] | None = None
    pretrained_options: Mapping[str, Any] = field(default_factory=dict)


_MODELS: Registry[_Entry] = Registry("model", list_call="blockzoo.list_models()")
_PARAM_COUNTS: dict[str, int] = {}


def register_model(
    name: str,
    *,
    family: str,
    paper: str = "",
    input_size: Sequence[int] = (3, 224, 224),
    min_input_size: Sequence[int] | None = None,
    pretrained_options: Mapping[str, Any] | None = None,
) -> Callable[[Builder], Builder]:
    """Register a model builder under ``name``; use as a decorator.

    The builder takes keyword arguments only, including ``num_classes``,
    ``in_channels``, ``device`` and ``dtype``, and returns the model.

    Args:
        name: The new name; a taken name raises ``ValueError``.
        family: The family, for listings.
        paper: The reference, for listings.
        input_size: Default input ``(C, H, W)``.
        min_input_size: The smallest input ``(H, W)`` the model takes, when
            smaller images would leave no map for a layer (``None``: not
            recorded). The command line enlarges the digits to it.
        pretrained_options: Options that :func:`~blockzoo.create_model` gives the
            builder when weights are loaded (``pretrained`` is set) and the
            caller did not give them: the configuration the weights were made
            for (torchvision's ``googlenet`` re-normalises its input for its
            weights, ``transform_input=True``).

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Example:
        >>> import torch.nn as nn
        >>> import blockzoo
        >>> @blockzoo.register_model("tiny_demo", family="demo", input_size=(1, 8, 8))
        ... def tiny(*, num_classes: int = 10, in_channels: int = 1, device=None, dtype=None) -> nn.Module:
        ...     return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes, device=device, dtype=dtype))
        >>> blockzoo.create_model("tiny_demo", num_classes=3)[1]
        Linear(in_features=64, out_features=3, bias=True)
    """

    def decorator(builder: Builder) -> Builder:
        if not callable(builder):
            raise TypeError(f"register_model needs a callable builder. Received: builder={builder!r}")
        options = dict(pretrained_options or {})
        reject_unknown_keywords(options, _accepted(builder), owner=f"pretrained_options of model {name!r}")
        entry = _Entry(builder, family, paper, tuple(input_size), _check_min_input_size(min_input_size), options)
        _MODELS.register(name, entry)
        return builder

    return decorator


def list_models(include: GlobsLike = "*", exclude: GlobsLike = None) -> list[str]:
    """Sorted registered model names, filtered by globs.

    Example:
        >>> import blockzoo
        >>> blockzoo.list_models("resnet1*")
        ['resnet101', 'resnet110', 'resnet152', 'resnet18']
    """
    return _MODELS.list(include, exclude)


def _check_min_input_size(value: Sequence[int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(
            f"min_input_size must be (H, W), two positive ints, or None. Received: min_input_size={value!r}"
        )
    if not all(is_int(v) and v > 0 for v in value):
        raise ValueError(
            f"min_input_size must be (H, W), two positive ints, or None. Received: min_input_size={value!r}"
        )
    return int(value[0]), int(value[1])


def _accepted(builder: Builder) -> list[str]:
    return [p for p in inspect.signature(builder).parameters if p != "self"]


def model_signature(name: str) -> inspect.Signature:
    """The signature of a registered model's builder: the options :func:`create_model` accepts.

    For blockzoo's own tools (the command line reads which options a model
    takes, and their defaults); not re-exported.

    Raises:
        UnknownNameError: ``name`` is not registered (close matches suggested).

    Example:
        >>> from blockzoo.models._registry import model_signature
        >>> "img_size" in model_signature("simple_cnn").parameters, "img_size" in model_signature("resnet20").parameters
        (True, False)
    """
    return inspect.signature(_MODELS.get(name).builder)


def model_input_size(name: str) -> tuple[int, ...]:
    """A registered model's default input size ``(C, H, W)``, without building it (as :func:`model_info` does).

    For blockzoo's own tools; not re-exported.

    Example:
        >>> from blockzoo.models._registry import model_input_size
        >>> model_input_size("tutorial_cnn")
        (3, 32, 32)
    """
    return _MODELS.get(name).input_size


def model_min_input_size(name: str) -> tuple[int, int] | None:
    """A registered model's smallest input ``(H, W)``, where recorded, without building it (see :func:`model_info`).

    For blockzoo's own tools; not re-exported.

    Example:
        >>> from blockzoo.models._registry import model_min_input_size
        >>> model_min_input_size("inception_v3"), model_min_input_size("lenet5")
        ((75, 75), None)
    """
    return _MODELS.get(name).min_input_size


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    pretrained: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: A name from :func:`list_models`.
        num_classes: Classes of the classifier (the model's default when ``None``).
        in_channels: Channels of the input (the model's default when ``None``).
        pretrained: ``"torchvision"`` to load torchvision's weights for the
            same architecture (downloaded through torchvision's weights API),
            or ``None``. Options the weights need (``transform_input=True``
            for ``googlenet`` and ``inception_v3``, as in torchvision) are then
            set, unless given.
        **kwargs: Options of the model's builder, checked against its signature.

    Returns:
        The model, with ``model_name`` and ``model_config`` attributes that
        :func:`~blockzoo.save_weights` records.

    Raises:
        UnknownNameError: ``name`` is not registered (close matches suggested).
        TypeError: an option the builder does not take (the accepted ones are listed).

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("resnet20", num_classes=100)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 100])
        >>> model.model_config
        {'num_classes': 100}
    """
    entry = _MODELS.get(name)
    config = dict(kwargs)
    if pretrained is not None:
        config = {**entry.pretrained_options, **config}
    if num_classes is not None:
        config["num_classes"] = num_classes
    if in_channels is not None:
        config["in_channels"] = in_channels
    reject_unknown_keywords(config, _accepted(entry.builder), owner=f"model {name!r}")
    model = entry.builder(**config)
    model.model_name = _MODELS.canonical(name)  # type: ignore[assignment]
    model.model_config = {k: v for k, v in config.items() if k not in ("device", "dtype")}  # type: ignore[assignment]
    if pretrained is not None:
        from blockzoo.models._torchvision import load_pretrained

        load_pretrained(model, name, pretrained)
    return model


def model_info(name: str) -> ModelInfo:
    """Family, paper, default input size and parameter count of a registered model.

    The parameter count comes from building the default configuration on the
    meta device (no memory, no compute).

    Example:
        >>> import blockzoo
        >>> blockzoo.model_info("resnet18").num_params
        11689512
    """
    entry = _MODELS.get(name)
    canonical = _MODELS.canonical(name)
    if canonical not in _PARAM_COUNTS:
        with torch.device("meta"):
            model = entry.builder()
        _PARAM_COUNTS[canonical] = sum(p.numel() for p in model.parameters())
    return ModelInfo(
        canonical, entry.family, entry.paper, entry.input_size, _PARAM_COUNTS[canonical], entry.min_input_size
    )
