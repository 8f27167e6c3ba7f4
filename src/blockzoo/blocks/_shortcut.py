"""Shortcuts of residual blocks that change the shape: zero-padding (option A) or a 1x1 conv-norm (option B)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blockzoo._checks import check_positive_int, check_spatial_dims
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import Block
from blockzoo.blocks._conv import ConvNormAct
from blockzoo.layers import LayerSpec, Placement, keep_channels_last

__all__ = ["PadShortcut", "shortcut_for"]


class PadShortcut(Block):
    """The parameter-free shortcut of He et al. 2016 (option A): subsample, then zero-pad channels.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output (at least ``in_channels``).
        stride: Spatial subsampling.
        spatial_dims: 1, 2 or 3.
        device: Accepted for a uniform block constructor; it has no tensors.
        dtype: Accepted for a uniform block constructor; it has no tensors.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *ceil(spatial / stride)]``.

    Example:
        >>> import torch
        >>> from blockzoo.blocks import PadShortcut
        >>> PadShortcut(16, 32, stride=2)(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        if out_channels < in_channels:
            raise ValueError(
                f"out_channels must be at least in_channels ({in_channels}) for a padding shortcut. "
                f"Received: out_channels={out_channels}"
            )
        self.stride = check_positive_int("stride", stride)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self._index = (slice(None), slice(None), *([slice(None, None, stride)] * self.spatial_dims))
        self._pad = [0, 0] * self.spatial_dims + [0, out_channels - in_channels]

    def forward(self, x: Tensor) -> Tensor:
        return keep_channels_last(x, F.pad(x[self._index], self._pad))  # F.pad returns contiguous memory

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, *spatial = input_shape
        return torch.Size((n, self.out_channels, *(-(-s // self.stride) for s in spatial)))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def shortcut_for(
    kind: str, in_channels: int, out_channels: int, stride: int, norm_layer: LayerSpec, nd: int, placement: Placement
) -> nn.Module | None:
    """The shortcut a block from ``in_channels`` to ``out_channels`` at ``stride`` needs (``None``: the identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    if kind == "pad":
        return PadShortcut(in_channels, out_channels, stride=stride, spatial_dims=nd, **placement)
    return ConvNormAct(
        in_channels, out_channels, 1, stride=stride, norm_layer=norm_layer, act_layer=None, spatial_dims=nd, **placement
    )
