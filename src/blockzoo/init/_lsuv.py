"""``lsuv_``: layer-sequential unit-variance initialisation (Mishkin and Matas 2016)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from blockzoo._checks import check_int, check_module, check_number
from blockzoo._layer_kinds import WeightLayer
from blockzoo.init._defaults import WEIGHT_LAYERS
from blockzoo.init._records import set_record

__all__ = ["lsuv_"]


class _Stop(Exception):
    """Raised by the capturing hook to end a forward pass once the layer of interest has run."""


def _run(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, Tensor):
        model(batch)
    elif isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        model(**batch)


def _call_order(model: nn.Module, batch: Any) -> list[tuple[str, WeightLayer]]:
    """The conv and linear layers in the order the forward pass first calls them."""
    names = {m: name for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}
    order: dict[WeightLayer, None] = {}
    handles = [m.register_forward_hook(lambda m, i, o: order.setdefault(m, None)) for m in names]
    try:
        _run(model, batch)
    finally:
        for h in handles:
            h.remove()
    return [(names[m], m) for m in order]


def _output_std(model: nn.Module, layer: nn.Module, batch: Any) -> float:
    captured: list[float] = []

    def hook(module: nn.Module, args: Any, out: Tensor) -> None:
        captured.append(float(out.detach().float().std()))
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        _run(model, batch)
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured[0]


def lsuv_(
    model: nn.Module,
    batch: Any,
    *,
    tol: float = 0.1,
    max_iters: int = 10,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Layer-sequential unit-variance initialisation, in place; returns ``model``.

    Every conv and linear weight is first made orthogonal (biases zero); then,
    in the order the forward pass calls them, each layer's weight is divided
    by the std of its output on ``batch`` until that std is within ``tol`` of
    1 (at most ``max_iters`` times per layer). The passes run in eval mode
    under ``torch.no_grad()``, so batch-norm statistics and dropout are
    untouched; each module's train/eval mode is restored and no hooks remain,
    even on error. Works on any model, blockzoo's or not.

    Args:
        model: Any module with conv or linear layers.
        batch: A representative input: a tensor, a tuple of positional
            inputs, or a dict of keyword inputs.
        tol: Accepted distance of each output std from 1.
        max_iters: Rescalings per layer at most.
        generator: For the orthogonal draws.

    Returns:
        ``model``.

    Raises:
        ValueError: bad ``tol`` or ``max_iters``; no conv or linear layer runs
            on ``batch``; a layer's output is constant (std 0).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from blockzoo import lsuv_
        >>> net = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
        >>> x = torch.randn(256, 32)
        >>> _ = lsuv_(net, x)
        >>> with torch.no_grad():
        ...     h = net[2](net[1](net[0](x)))
        >>> abs(h.std().item() - 1) < 0.1
        True
    """
    check_module("model", model)
    tol = check_number("tol", tol, low=0, high=1, low_open=True, high_open=True)
    max_iters = check_int("max_iters", max_iters, low=1)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            layers = _call_order(model, batch)
            if not layers:
                raise ValueError(f"no conv or linear layer of {type(model).__name__} runs on the batch")
            for _, layer in layers:
                nn.init.orthogonal_(layer.weight, generator=generator)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            for name, layer in layers:
                for _ in range(max_iters):
                    std = _output_std(model, layer, batch)
                    if not math.isfinite(std) or std == 0:
                        raise ValueError(f"the output of {name} has std {std} on the batch; LSUV cannot rescale it")
                    if abs(std - 1) < tol:
                        break
                    layer.weight.div_(std)
                set_record(layer, "weight", "lsuv (orthogonal, rescaled)", None)
                if layer.bias is not None:
                    set_record(layer, "bias", "zeros", 0.0)
    finally:
        for m, training in modes.items():
            m.training = training
    return model
