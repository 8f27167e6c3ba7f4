"""Argument validation and input-error messages shared by every block.

One message format everywhere: name the argument, state the rule, show what
was received.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from blockzoo.errors import InputError

__all__ = [
    "check_choice",
    "check_int_tuple",
    "check_positive_int",
    "check_probability",
    "check_spatial_dims",
    "layout_error",
]

_SPATIAL_NAMES = {0: (), 1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any) -> int:
    """``value`` if it is an int >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")
    return int(value)


def check_int_tuple(name: str, value: Any, n: int, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or ``n`` ints, each >= ``minimum``, as a tuple of ``n`` ints."""
    items = (value,) * n if _is_int(value) else value
    if not isinstance(items, Sequence) or len(items) != n or not all(_is_int(v) and v >= minimum for v in items):
        raise ValueError(
            f"{name} must be an int >= {minimum} or a sequence of {n} such ints. Received: {name}={value!r}"
        )
    return tuple(int(v) for v in items)


def check_number(name: str, value: Any, *, low: float, high: float | None = None) -> float:
    """``value`` as a float when it is a real number in ``[low, high]`` (NaN never is)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value >= low
        or (high is not None and not value <= high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a number {bound}. Received: {name}={value!r}")
    return float(value)


def check_probability(name: str, value: Any) -> float:
    """``value`` if it is a real number in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}. Received: {name}={value!r}")
    return str(value)


def check_spatial_dims(value: Any, allowed: Sequence[int] = (1, 2, 3)) -> int:
    """``value`` if it is one of the allowed spatial ranks."""
    if not _is_int(value) or value not in allowed:
        raise ValueError(
            f"spatial_dims must be one of {', '.join(map(str, allowed))}. Received: spatial_dims={value!r}"
        )
    return int(value)


def layout(channels: int | str, spatial_dims: int) -> str:
    """``[N, 3, H, W]`` for ``channels=3, spatial_dims=2``."""
    return "[" + ", ".join(["N", str(channels), *_SPATIAL_NAMES[spatial_dims]]) + "]"


def _hint(shape: Sequence[int], dtype: torch.dtype | None, channels: int, rank: int, channel_dim: int) -> str:
    if dtype is not None and not (dtype.is_floating_point):
        return (
            f"blocks compute in floating point; convert the tensor with x.float() "
            f"(images stored as uint8: x.float() / 255). Received dtype {dtype}."
        )
    if len(shape) == rank - 1:
        return "the batch dimension is missing; add it with x.unsqueeze(0)."
    if len(shape) != rank:
        return f"expected {rank} dimensions, received {len(shape)}."
    if channel_dim == 1 and rank >= 3 and shape[-1] == channels:
        perm = ", ".join(["0", str(rank - 1), *(str(i) for i in range(1, rank - 1))])
        return (
            f"the tensor looks channels-last (channels in the last dimension); blocks take channels "
            f"first: x.permute({perm}). For channels-last memory keep this shape order and use "
            f"x.contiguous(memory_format=torch.channels_last)."
        )
    return (
        f"the input has {shape[channel_dim]} channels where {channels} were expected; fix the "
        f"previous layer or build this block with {shape[channel_dim]} input channels."
    )


def layout_error(
    block: str,
    shape: Sequence[int],
    dtype: torch.dtype | None,
    *,
    expected: str,
    channels: int,
    rank: int,
    channel_dim: int = 1,
    hint: str | None = None,
) -> InputError:
    """The :class:`InputError` for an input that does not fit a block's layout."""
    received = "[" + ", ".join(str(s) for s in shape) + "]"
    what = f"{received} ({dtype})" if dtype is not None else received
    why = hint if hint is not None else _hint(shape, dtype, channels, rank, channel_dim)
    return InputError(f"{block} expected input of shape {expected}, received {what}.\nHint: {why}")
