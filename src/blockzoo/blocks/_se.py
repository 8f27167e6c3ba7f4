"""Squeeze-and-excitation channel attention."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from blockzoo._checks import check_number, check_positive_int, check_spatial_dims
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import ChannelsFirstBlock
from blockzoo.layers import LayerSpec, Placement, build_layer

__all__ = ["SqueezeExcite"]


class SqueezeExcite(ChannelsFirstBlock):
    """Squeeze-and-excitation (Hu et al. 2018): rescale each channel by a learned gate.

    The map is averaged over space, passed through a bottleneck of two 1x1
    convs, and the gated result multiplies the input channel by channel.

    Args:
        channels: Channels of the input and output.
        rd_ratio: Bottleneck width as a fraction of ``channels``.
        rd_channels: Bottleneck width; overrides ``rd_ratio``.
        act_layer: Activation inside the bottleneck.
        gate_layer: The gate, a registered activation name or callable
            (``"sigmoid"``, or ``"hardsigmoid"`` as in MobileNet v3).
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, channels, *spatial]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import SqueezeExcite
        >>> se = SqueezeExcite(64)
        >>> se.fc1
        Conv2d(64, 16, kernel_size=(1, 1), stride=(1, 1))
        >>> se(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(
        self,
        channels: int,
        *,
        rd_ratio: float = 0.25,
        rd_channels: int | None = None,
        act_layer: LayerSpec = "relu",
        gate_layer: LayerSpec = "sigmoid",
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = nd = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("channels", channels)
        if rd_channels is None:
            rd_ratio = check_number("rd_ratio", rd_ratio, low=0, high=1, low_open=True)
            rd_channels = max(1, round(channels * rd_ratio))
        check_positive_int("rd_channels", rd_channels)
        placement: Placement = {"device": device, "dtype": dtype}
        self.fc1 = build_layer("conv", "conv", channels, rd_channels, 1, spatial_dims=nd, **placement)
        self.act = build_layer("act", act_layer, spatial_dims=nd, inplace=True, **placement)
        self.fc2 = build_layer("conv", "conv", rd_channels, channels, 1, spatial_dims=nd, **placement)
        self.gate = build_layer("act", gate_layer, spatial_dims=nd, argname="gate_layer", **placement)
        self._dims = tuple(range(2, nd + 2))
        self.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        squeezed = x.mean(self._dims, keepdim=True)  # [N, C, 1, 1]
        scale: Tensor = self.gate(self.fc2(self.act(self.fc1(squeezed))))
        return x * scale

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return torch.Size(self._check_shape(input_shape))
