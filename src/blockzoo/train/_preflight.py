"""Before the first step: does the model fit the data (channels, input size, classes)?"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from blockzoo.errors import InputError
from blockzoo.shapes import infer_shape

__all__ = ["check_model_fits"]


def _name(model: nn.Module) -> str:
    return str(getattr(model, "model_name", type(model).__name__))


def _builder_hint(model: nn.Module, option: str, value: int) -> str:
    name = getattr(model, "model_name", None)
    if name is None:
        return f"build the model with {option}={value}"
    return f"build it with create_model({name!r}, {option}={value})"


def _first_conv(model: nn.Module) -> nn.Module | None:
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return module
    return None


def _label_count(targets: Tensor | None, data: Any) -> int | None:
    """Classes the data's labels need: the largest label + 1 (or ``len(data.classes)``)."""
    classes = getattr(data, "classes", None)
    if isinstance(classes, (list, tuple)) and classes:
        return len(classes)
    if targets is not None and not targets.is_floating_point() and targets.ndim == 1 and targets.numel():
        return int(targets.max()) + 1
    return None


def check_model_fits(model: nn.Module, x: Any, targets: Tensor | None, data: Any) -> None:
    """Refuse, before anything trains, a model whose input channels, input size or classes do not fit the data.

    ``x`` is a batch of inputs, ``targets`` the labels of the whole data set
    where they are at hand (else of the batch), ``data`` the data set (for
    ``classes``). Models with several inputs are not checked.

    Raises:
        InputError: what does not fit, and how to fix it.
    """
    if not isinstance(x, Tensor):
        return
    conv = _first_conv(model)
    if conv is not None and x.ndim == conv.weight.ndim and x.shape[1] != getattr(conv, "in_channels", x.shape[1]):
        expected = conv.in_channels
        raise InputError(
            f"{_name(model)} takes {expected} input channels, and the data have {x.shape[1]}: "
            f"{_builder_hint(model, 'in_channels', x.shape[1])}. Received: inputs of shape {tuple(x.shape)}"
        )
    shape = (2, *x.shape[1:])  # two samples: batch norm in training mode needs more than one
    try:
        with torch.no_grad():
            out = infer_shape(model, shape)
    except Exception as err:
        hint = ""
        if "img_size" in getattr(model, "model_config", {}) or getattr(model, "model_name", None):
            hint = " If the model takes img_size=, pass the data's size; or resize the data (digits(image_size=...))."
        raise InputError(
            f"{_name(model)} cannot take inputs of shape {tuple(x.shape[1:])} (per sample): {err}.{hint} "
            f"Received: inputs of shape {tuple(x.shape)}"
        ) from err
    needed = _label_count(targets, data)
    if needed is not None and len(out) >= 2 and out[1] < needed:
        raise InputError(
            f"{_name(model)} has {out[1]} outputs, and the labels need {needed} classes: "
            f"{_builder_hint(model, 'num_classes', needed)} (or call reset_classifier({needed})). "
            f"Received: labels up to {needed - 1}"
        )
