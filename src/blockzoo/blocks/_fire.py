"""SqueezeNet's Fire module."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from blockzoo._checks import check_positive_int, check_spatial_dims
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import ChannelsFirstBlock
from blockzoo.blocks._conv import ConvNormAct
from blockzoo.layers import LayerSpec, Placement, keep_channels_last

__all__ = ["Fire"]


class Fire(ChannelsFirstBlock):
    """The Fire module of SqueezeNet (Iandola et al. 2016): a 1x1 squeeze, then 1x1 and 3x3 expands side by side.

    The squeeze narrows the map to ``squeeze_channels``; the two expands read
    it and their outputs are concatenated along the channels (the 1x1 expand
    first). Every conv is followed by the activation; SqueezeNet has no norm
    (``norm_layer=None``, and the convs then have a bias).

    Args:
        in_channels: Channels of the input.
        squeeze_channels: Width of the squeeze conv.
        expand1x1_channels: Output channels of the 1x1 expand.
        expand3x3_channels: Output channels of the 3x3 expand.
        norm_layer: As in :class:`ConvNormAct`, for every conv.
        act_layer: As in :class:`ConvNormAct`, after every conv.
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, expand1x1_channels + expand3x3_channels, *spatial]``.

    Example:
        >>> import torch
        >>> from blockzoo import Fire
        >>> fire = Fire(96, 16, 64, 64)
        >>> [name for name, _ in fire.named_children()]
        ['squeeze', 'expand1x1', 'expand3x3']
        >>> fire(torch.randn(2, 96, 13, 13)).shape
        torch.Size([2, 128, 13, 13])
    """

    def __init__(
        self,
        in_channels: int,
        squeeze_channels: int,
        expand1x1_channels: int,
        expand3x3_channels: int,
        *,
        norm_layer: LayerSpec = None,
        act_layer: LayerSpec = "relu",
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = nd = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        check_positive_int("squeeze_channels", squeeze_channels)
        check_positive_int("expand1x1_channels", expand1x1_channels)
        check_positive_int("expand3x3_channels", expand3x3_channels)
        self.out_channels = expand1x1_channels + expand3x3_channels
        placement: Placement = {"device": device, "dtype": dtype}
        common = {"norm_layer": norm_layer, "act_layer": act_layer, "spatial_dims": nd, **placement}
        self.squeeze = ConvNormAct(in_channels, squeeze_channels, 1, **common)  # type: ignore[arg-type]
        self.expand1x1 = ConvNormAct(squeeze_channels, expand1x1_channels, 1, **common)  # type: ignore[arg-type]
        self.expand3x3 = ConvNormAct(squeeze_channels, expand3x3_channels, 3, **common)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        squeezed = self.squeeze(x)
        # a one-channel squeeze loses channels_last memory in torch's conv: put the output back in the input's
        return keep_channels_last(x, torch.cat((self.expand1x1(squeezed), self.expand3x3(squeezed)), dim=1))

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, *spatial = self._check_shape(input_shape)
        return torch.Size((n, self.out_channels, *spatial))
