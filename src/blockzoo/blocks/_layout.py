"""The input-layout error every channels-first block raises, with a hint at the likely cause."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from blockzoo.errors import InputError

__all__ = ["features_hint", "head_hint", "layout", "layout_error", "tokens_error"]

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


def tokens_error(
    block: str, shape: Sequence[int], dtype: torch.dtype | None, dim: int, hint: str | None = None
) -> InputError:
    """The :class:`InputError` of a block on tokens ``[N, L, dim]``."""
    if hint is None and len(shape) == 4 and shape[1] == dim:
        hint = (
            "the input looks like a map [N, C, H, W]; attention takes tokens [N, L, C]: "
            "x.flatten(2).transpose(1, 2), or a PatchEmbed before the block."
        )
    return layout_error(block, shape, dtype, expected=f"[N, L, {dim}]", channels=dim, rank=3, channel_dim=-1, hint=hint)


def _times(sizes: Sequence[int], sep: str = " x ") -> str:
    return sep.join(str(s) for s in sizes)


def _pooling_change(shape: Sequence[int], in_features: int) -> str | None:
    """How many pooling stages that halve the map would make ``shape`` flatten to ``in_features``, in words."""
    channels, spatial = shape[1], tuple(shape[2:])
    if not spatial or channels == 0 or in_features % channels:
        return None
    target, current = in_features // channels, math.prod(spatial)
    for k in range(1, 8):
        f = 2**k
        stages = "one more pooling stage" if k == 1 else f"{k} more pooling stages"
        if current == target * f ** len(spatial) and all(s % f == 0 for s in spatial):
            smaller = tuple(s // f for s in spatial)
            return (
                f"add {stages} that halve{'s' if k == 1 else ''} the map "
                f"({_times(spatial, 'x')} -> {_times(smaller, 'x')})"
            )
        if target == current * f ** len(spatial):
            larger = tuple(s * f for s in spatial)
            return f"use {'one pooling stage' if k == 1 else f'{k} pooling stages'} fewer (a {_times(larger, 'x')} map)"
    return None


def head_hint(shape: Sequence[int], in_features: int, *, flattens: bool, spatial_dims: int) -> str | None:
    """The fix for a classifier head whose ``in_features`` does not fit the map it receives; ``None``: no better hint.

    A flattening head (``pool_layer=None``) needs the flattened size, ``C x H x W``; a pooling head the channels.
    """
    if len(shape) < 2:
        return None
    flat = math.prod(shape[1:])
    if flattens:
        if len(shape) == 2:
            return f"build this head with in_features={flat}, the number of features per sample."
        hint = (
            f"this head flattens its input (pool_layer=None), and a {_times(shape[1:])} map has {flat} elements "
            f"per sample, not {in_features}: build it with in_features={flat}"
        )
        change = _pooling_change(shape, in_features)
        if in_features == shape[1]:
            hint += f", or pool instead of flattening: a head with the default pool_layer takes in_features={shape[1]}"
        elif change is not None:
            hint += f", or {change}"
        return hint + "."
    if len(shape) == 2:
        return (
            f"the input is already flat; this head pools a map [N, C, *spatial] first. Give it the map, or build it "
            f"with pool_layer=None and in_features={shape[1]} for flat features."
        )
    if len(shape) != spatial_dims + 2:
        return None
    hint = (
        f"this head pools the map to its {shape[1]} channels, so in_features is the channel count: "
        f"build it with in_features={shape[1]}, or fix the previous layer to give {in_features} channels"
    )
    if in_features == flat:
        hint += f". {in_features} is the flattened size ({_times(shape[1:])}), which a head with pool_layer=None takes"
    return hint + "."


def features_hint(shape: Sequence[int], in_features: int, *, flat_only: bool) -> str | None:
    """The fix for an MLP whose ``in_features`` does not fit its input's last dimension; ``None``: no better hint."""
    if len(shape) < 2:
        return None
    flat = math.prod(shape[1:])
    if len(shape) > 2 and (flat_only or (shape[-1] != in_features and flat == in_features)):
        why = " (its batch norm reads dimension 1 as the features)" if flat_only else ""
        hint = (
            f"this MLP takes [N, features]{why}: flatten the input first "
            f"(nn.Flatten() gives {_times(shape[1:])} = {flat} features)"
        )
        return hint + (f" and build the MLP with in_features={flat}." if flat != in_features else ".")
    if shape[-1] != in_features:
        return (
            f"the input has {shape[-1]} features in its last dimension where {in_features} were expected; fix the "
            f"previous layer or build this MLP with in_features={shape[-1]}."
        )
    return None
