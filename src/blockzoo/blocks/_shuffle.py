"""The ShuffleNet v2 unit and the channel shuffle."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from blockzoo._checks import check_positive_int, check_spatial_dims
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import ChannelsFirstBlock
from blockzoo.blocks._conv import ConvNormAct
from blockzoo.layers import LayerSpec, Placement, keep_channels_last
from blockzoo.shapes import infer_shape

__all__ = ["ShuffleUnit", "channel_shuffle"]


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` equal groups (Zhang et al. 2018): group-major order to channel-major.

    Channel ``g * (C // groups) + i`` of ``x`` goes to ``i * groups + g``. The
    result keeps channels_last memory when ``x`` has it.

    Args:
        x: A map ``[N, C, *spatial]``.
        groups: How many equal groups the channels form; must divide ``C``.

    Returns:
        ``x`` with its channels interleaved.

    Raises:
        ValueError: ``groups`` is not a positive int, or does not divide ``C``.

    Example:
        >>> import torch
        >>> from blockzoo.blocks import channel_shuffle
        >>> channel_shuffle(torch.arange(6.0).view(1, 6, 1, 1), 2).flatten().tolist()
        [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    """
    check_positive_int("groups", groups)
    n, c, *spatial = x.shape
    if c % groups:
        raise ValueError(
            f"groups must divide the channels of x ({c}, of shape {list(x.shape)}). Received: groups={groups}"
        )
    out = x.reshape(n, groups, c // groups, *spatial).transpose(1, 2).reshape(n, c, *spatial)
    return keep_channels_last(x, out)


class ShuffleUnit(ChannelsFirstBlock):
    """The ShuffleNet v2 unit (Ma et al. 2018): split, one branch convolves, concatenate, shuffle.

    At stride 1 the input's first half passes on unchanged while ``branch2``
    (1x1 conv, depthwise 3x3 conv, 1x1 conv) transforms the second half; at
    stride 2 both halves of the output are computed from the whole input,
    ``branch1`` by a depthwise 3x3 conv and a 1x1 conv (and ``branch1`` is an
    identity at stride 1). The two halves are concatenated and shuffled
    (:func:`channel_shuffle` with 2 groups), so that the next unit's split
    mixes them. The depthwise convs have no activation, as in the paper.

    Args:
        in_channels: Channels of the input; at stride 1 they must equal
            ``out_channels``.
        out_channels: Channels of the output, an even number.
        stride: Stride of the depthwise convs, 1 or 2 (or more).
        norm_layer: As in :class:`ConvNormAct`.
        act_layer: As in :class:`ConvNormAct`, after the 1x1 convs.
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *ceil(spatial / stride)]``.

    Raises:
        ValueError: ``out_channels`` is odd, or the unit keeps the stride at 1
            but changes the channel count.

    Example:
        >>> import torch
        >>> from blockzoo import ShuffleUnit
        >>> down = ShuffleUnit(24, 116, stride=2)
        >>> down(torch.randn(2, 24, 16, 16)).shape
        torch.Size([2, 116, 8, 8])
        >>> unit = ShuffleUnit(116, 116)
        >>> unit.branch1, unit.branch2[1].conv
        (Identity(), Conv2d(58, 58, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=58, bias=False))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = nd = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.stride = check_positive_int("stride", stride)
        if out_channels % 2:
            raise ValueError(
                f"out_channels must be even: the unit concatenates two halves. Received: out_channels={out_channels}"
            )
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                "a stride-1 unit passes half its input on unchanged, so out_channels must equal in_channels "
                f"({in_channels}); use stride=2 to change the width. Received: out_channels={out_channels}"
            )
        half = out_channels // 2
        placement: Placement = {"device": device, "dtype": dtype}
        common = {"norm_layer": norm_layer, "spatial_dims": nd, **placement}
        self.branch1: nn.Module = nn.Identity()
        if stride > 1:
            self.branch1 = nn.Sequential(
                ConvNormAct(in_channels, in_channels, 3, stride=stride, groups=in_channels, act_layer=None, **common),  # type: ignore[arg-type]
                ConvNormAct(in_channels, half, 1, act_layer=act_layer, **common),  # type: ignore[arg-type]
            )
        branch_in = in_channels if stride > 1 else half
        self.branch2 = nn.Sequential(
            ConvNormAct(branch_in, half, 1, act_layer=act_layer, **common),  # type: ignore[arg-type]
            ConvNormAct(half, half, 3, stride=stride, groups=half, act_layer=None, **common),  # type: ignore[arg-type]
            ConvNormAct(half, half, 1, act_layer=act_layer, **common),  # type: ignore[arg-type]
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if self.stride == 1:
            kept, transformed = x.chunk(2, dim=1)
            halves = (kept, self.branch2(transformed))
        else:
            halves = (self.branch1(x), self.branch2(x))
        # concatenating the halves and shuffling them with 2 groups interleaves them: stack on a new axis
        # after the channels and merge the two (one copy instead of the two of cat then shuffle)
        out = torch.stack(halves, dim=2).flatten(1, 2)
        return keep_channels_last(x, out)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, *spatial = self._check_shape(input_shape)
        branch_in = self.in_channels if self.stride > 1 else self.out_channels // 2
        _, _, *out_spatial = infer_shape(self.branch2, (n, branch_in, *spatial))
        return torch.Size((n, self.out_channels, *out_spatial))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"
