"""The input-layout error every channels-first block raises, with a hint at the likely cause."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from blockzoo.errors import InputError

__all__ = ["layout", "layout_error"]

_SPATIAL_NAMES = {0: (), 1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


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
