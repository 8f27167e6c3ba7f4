"""Shape inference and shape tracing.

:func:`infer_shape` answers "what comes out of this module for that input
shape?" without running it on data: statically for blockzoo blocks (their
``output_shape``) and the common ``torch.nn`` layers, and by a forward pass on
the meta device (no memory, no compute) for anything else.

:func:`trace_shapes` is the course's shape-debugging exercise as one call: it
runs a real forward pass and prints each layer's output shape, dtype and device.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import torch
from torch import Tensor, nn

from blockzoo._checks import is_int
from blockzoo._layer_kinds import CONV_LAYERS, NORM_LAYERS
from blockzoo._trees import tensor_leaves

__all__ = ["ShapeRecord", "conv_output_size", "infer_shape", "infer_shape_meta", "trace_shapes"]

ShapeLike = Sequence[int]

# Layers whose output shape is their input shape. Activations and dropout are
# matched by their defining module so that every torch.nn activation is covered.
_SAME_SHAPE_MODULES = frozenset({"torch.nn.modules.activation", "torch.nn.modules.dropout"})
_SAME_SHAPE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Identity,
    *NORM_LAYERS,
)


def _ints(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    return (value,) * n if isinstance(value, int) else tuple(value)


def conv_output_size(size: int, kernel_size: int, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one dimension.

    Example:
        >>> from blockzoo.shapes import conv_output_size
        >>> conv_output_size(32, 3, padding=1), conv_output_size(32, 2, stride=2)
        (32, 16)
    """
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _conv_shape(
    m: nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d,
    shape: tuple[int, ...],
) -> tuple[int, ...]:
    nd = len(m.kernel_size)
    spatial = shape[-nd:]
    if m.transposed:
        out_pad = _ints(m.output_padding, nd)
        pad = _ints(m.padding, nd)  # type: ignore[arg-type]
        sizes = [
            (s - 1) * st - 2 * p + d * (k - 1) + op + 1
            for s, k, st, p, d, op in zip(spatial, m.kernel_size, m.stride, pad, m.dilation, out_pad, strict=False)
        ]
    elif m.padding == "same":
        sizes = list(spatial)
    else:
        pad = (0,) * nd if m.padding == "valid" else _ints(m.padding, nd)  # type: ignore[arg-type]
        sizes = [
            conv_output_size(s, k, stride=st, padding=p, dilation=d)
            for s, k, st, p, d in zip(spatial, m.kernel_size, m.stride, pad, m.dilation, strict=False)
        ]
    return (*shape[: -nd - 1], m.out_channels, *sizes)


def _pool_shape(m: Any, shape: tuple[int, ...], nd: int) -> tuple[int, ...]:
    kernel = _ints(m.kernel_size, nd)
    stride = _ints(m.stride if m.stride is not None else m.kernel_size, nd)
    pad = _ints(m.padding, nd)
    dil = _ints(getattr(m, "dilation", 1), nd)
    sizes = []
    for s, k, st, p, d in zip(shape[-nd:], kernel, stride, pad, dil, strict=False):
        span = s + 2 * p - d * (k - 1) - 1
        out = (math.ceil(span / st) if m.ceil_mode else span // st) + 1
        if m.ceil_mode and (out - 1) * st >= s + p:
            out -= 1  # the last window may not start in the right padding
        sizes.append(out)
    return (*shape[:-nd], *sizes)


def _adaptive_shape(m: Any, shape: tuple[int, ...], nd: int) -> tuple[int, ...]:
    out = m.output_size
    sizes = (out,) * nd if isinstance(out, int) or out is None else tuple(out)
    return (*shape[:-nd], *(s if o is None else o for s, o in zip(shape[-nd:], sizes, strict=False)))


def _flatten_shape(m: nn.Flatten, shape: tuple[int, ...]) -> tuple[int, ...]:
    start = m.start_dim % len(shape)
    end = m.end_dim % len(shape)
    return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


def _pool_dims(m: nn.Module) -> int | None:
    name = type(m).__name__
    for prefix in ("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool"):
        if name.startswith(prefix) and name[len(prefix) : len(prefix) + 1] in {"1", "2", "3"}:
            return int(name[len(prefix)])
    return None


def _static_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The output shape for the layers we know, else ``None``."""
    if isinstance(module, nn.Sequential):
        for child in module:
            shape = tuple(infer_shape(child, shape))
        return shape
    if isinstance(module, _SAME_SHAPE_TYPES) or (
        type(module).__module__ in _SAME_SHAPE_MODULES and not isinstance(module, nn.MultiheadAttention)
    ):
        return shape
    if isinstance(module, CONV_LAYERS):
        return _conv_shape(module, shape)
    if isinstance(module, nn.Linear):
        return (*shape[:-1], module.out_features)
    if isinstance(module, nn.Flatten):
        return _flatten_shape(module, shape)
    nd = _pool_dims(module)
    if nd is not None and module.__class__.__module__ == "torch.nn.modules.pooling":
        if type(module).__name__.startswith("Adaptive"):
            return _adaptive_shape(module, shape, nd)
        return _pool_shape(module, shape, nd)
    return None


def infer_shape_meta(module: nn.Module, input_shape: ShapeLike) -> torch.Size:
    """The output shape of ``module`` from a forward pass on the meta device.

    The module's parameters and buffers are swapped for meta tensors for the
    call (:func:`torch.func.functional_call`), so nothing is allocated or
    computed and the module is not changed.

    Example:
        >>> import torch.nn as nn
        >>> from blockzoo.shapes import infer_shape_meta
        >>> infer_shape_meta(nn.Upsample(scale_factor=2), (1, 3, 8, 8))
        torch.Size([1, 3, 16, 16])
    """
    shape = tuple(input_shape)
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    floating = [t.dtype for t in tensors.values() if t.is_floating_point()]
    dtype = floating[0] if floating else torch.get_default_dtype()
    meta = {name: torch.empty_like(t, device="meta") for name, t in tensors.items()}
    x = torch.empty(shape, dtype=dtype, device="meta")
    out = torch.func.functional_call(module, meta, (x,))
    if not isinstance(out, Tensor):
        raise TypeError(
            f"infer_shape needs a module that returns one tensor; {type(module).__name__} "
            f"returned {type(out).__name__}. Received: module={type(module).__name__}"
        )
    return out.shape


def infer_shape(module: nn.Module, input_shape: ShapeLike) -> torch.Size:
    """The shape ``module`` returns for an input of ``input_shape``.

    Static (no tensor is created) for modules with an ``output_shape`` method
    (every blockzoo block), ``nn.Sequential`` and the common ``torch.nn`` conv,
    pooling, adaptive pooling, linear, flatten, norm, activation, dropout and
    identity layers; a forward pass on the meta device for anything else.

    Args:
        module: Any module that takes one tensor and returns one tensor.
        input_shape: The input's shape, batch dimension included.

    Returns:
        The output shape.

    Raises:
        TypeError: ``input_shape`` is not a sequence of non-negative ints.

    Example:
        >>> import torch.nn as nn
        >>> from blockzoo import infer_shape
        >>> net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 16 * 16, 10))
        >>> infer_shape(net, (8, 3, 32, 32))
        torch.Size([8, 10])
    """
    if not isinstance(input_shape, Sequence) or not all(is_int(s) and s >= 0 for s in input_shape):
        raise TypeError(
            f"input_shape must be a sequence of non-negative ints such as (1, 3, 32, 32). "
            f"Received: input_shape={input_shape!r}"
        )
    shape = tuple(int(s) for s in input_shape)
    output_shape: Callable[[ShapeLike], Sequence[int]] | None = getattr(module, "output_shape", None)
    if callable(output_shape):
        return torch.Size(output_shape(shape))
    static = _static_shape(module, shape)
    return torch.Size(static) if static is not None else infer_shape_meta(module, shape)


@dataclass(frozen=True)
class ShapeRecord:
    """One row of :func:`trace_shapes`: a layer and what it returned.

    Example:
        >>> import torch
        >>> from blockzoo import ShapeRecord
        >>> ShapeRecord("fc", "Linear", torch.Size([2, 10]), torch.float32, torch.device("cpu"))
        ShapeRecord(name='fc', layer='Linear', shape=torch.Size([2, 10]), dtype=torch.float32, device=device(type='cpu'))
    """

    name: str
    layer: str
    shape: torch.Size
    dtype: torch.dtype
    device: torch.device


def _record(name: str, layer: str, out: Any) -> ShapeRecord | None:
    leaves = tensor_leaves(out)
    if not leaves:
        return None
    t = leaves[0]
    return ShapeRecord(name, layer, t.shape, t.dtype, t.device)


def _format(rec: ShapeRecord, widths: tuple[int, int]) -> str:
    shape = "[" + ", ".join(str(s) for s in rec.shape) + "]"
    return f"{rec.name:<{widths[0]}}  {rec.layer:<{widths[1]}}  {shape:<20}  {rec.dtype!s:<14}  {rec.device}"


def trace_shapes(model: nn.Module, x: Tensor, *, file: TextIO | None = None) -> list[ShapeRecord]:
    """Run ``model`` on ``x`` and print each layer's output shape, dtype and device.

    Every leaf module (one without children) gets a row, printed as soon as it
    returns, so when a forward pass fails on a shape mismatch the last row
    printed is the last layer that worked. The pass runs without gradients and
    in eval mode (batch-norm statistics are not updated); the model's modes
    are restored afterwards and no hook is left behind.

    Args:
        model: The model to trace.
        x: An input batch.
        file: Where to print (standard output when ``None``).

    Returns:
        The records, the input first.

    Example:
        >>> import torch, torch.nn as nn
        >>> from blockzoo import trace_shapes
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
        >>> records = trace_shapes(net, torch.zeros(2, 3, 8, 8))
        name   layer    output shape          dtype           device
        input  Tensor   [2, 3, 8, 8]          torch.float32   cpu
        0      Conv2d   [2, 4, 8, 8]          torch.float32   cpu
        1      ReLU     [2, 4, 8, 8]          torch.float32   cpu
        2      Flatten  [2, 256]              torch.float32   cpu
        3      Linear   [2, 10]               torch.float32   cpu
        >>> records[-1].shape
        torch.Size([2, 10])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"trace_shapes needs a tensor input. Received: x={type(x).__name__}")
    out = sys.stdout if file is None else file
    leaves = [(n or type(m).__name__, m) for n, m in model.named_modules() if not list(m.children())]
    widths = (
        max([len("input"), len("name"), *(len(n) for n, _ in leaves)]),
        max([len("Tensor"), len("layer"), *(len(type(m).__name__) for _, m in leaves)]),
    )
    header = ShapeRecord("name", "layer", torch.Size(), torch.float32, torch.device("cpu"))
    print(
        f"{header.name:<{widths[0]}}  {header.layer:<{widths[1]}}  {'output shape':<20}  {'dtype':<14}  device",
        file=out,
    )
    records = [ShapeRecord("input", "Tensor", x.shape, x.dtype, x.device)]
    print(_format(records[0], widths), file=out)

    def hook_for(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            rec = _record(name, type(module).__name__, output)
            if rec is not None:
                records.append(rec)
                print(_format(rec, widths), file=out)

        return hook

    modes = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook_for(n)) for n, m in leaves]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return records
