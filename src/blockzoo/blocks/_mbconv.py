"""Mobile inverted residual blocks: InvertedResidual (MobileNet v2), MBConv (EfficientNet v1, MobileNet v3), FusedMBConv (EfficientNet v2)."""

from __future__ import annotations

import torch
from torch import nn

from blockzoo._checks import check_number, check_positive_int, check_spatial_dims
from blockzoo._types import DeviceLike
from blockzoo.blocks._conv import ConvNormAct
from blockzoo.blocks._residual import _ChannelsResidual
from blockzoo.blocks._se import SqueezeExcite
from blockzoo.layers import LayerSpec, Placement

__all__ = ["FusedMBConv", "InvertedResidual", "MBConv"]


def hidden_width(in_channels: int, expand_ratio: float, mid_channels: int | None) -> int:
    """An inverted residual's expanded width: ``mid_channels`` when given, else ``round(in_channels * expand_ratio)``.

    ``expand_ratio`` is checked (at least 1) either way.
    """
    ratio = check_number("expand_ratio", expand_ratio, low=1.0)
    if mid_channels is not None:
        return check_positive_int("mid_channels", mid_channels)
    return round(in_channels * ratio)


class InvertedResidual(_ChannelsResidual):
    """The MobileNet v2 block (Sandler et al. 2018): 1x1 expand, depthwise conv, optional SE, 1x1 linear projection.

    The sum with the input happens only when the shape is kept (stride 1 and
    ``in_channels == out_channels``); otherwise the block has no shortcut and
    ``forward`` returns the branch alone.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        kernel_size: Depthwise window.
        stride: Depthwise stride.
        expand_ratio: Hidden width over ``in_channels`` (no expansion conv
            when the hidden width equals ``in_channels``).
        mid_channels: The hidden width itself; overrides ``expand_ratio``.
        se_ratio: A :class:`SqueezeExcite` on the hidden map, its bottleneck
            ``max(1, round(se_ratio * hidden))`` wide (a fraction of the
            *hidden* width, :class:`SqueezeExcite`'s ``rd_ratio``; :class:`MBConv`'s
            and :class:`Bottleneck`'s ``se_ratio`` are fractions of
            ``in_channels``), or ``None`` for none.
        se_channels: The bottleneck width itself; overrides ``se_ratio`` (and
            adds the squeeze-excite when ``se_ratio`` is ``None``).
        se_act_layer: Activation inside the squeeze-excite bottleneck.
        se_gate_layer: The squeeze-excite gate.
        norm_layer: As in :class:`ConvNormAct`.
        act_layer: Activation of the expansion and depthwise convs.
        drop_path_rate: Stochastic-depth probability (only with a shortcut).
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *ceil(spatial / stride)]``.

    Example:
        >>> import torch
        >>> from blockzoo import InvertedResidual
        >>> block = InvertedResidual(24, 24, expand_ratio=6)
        >>> block.branch[1].conv.groups, block.has_shortcut
        (144, True)
        >>> block(torch.randn(1, 24, 8, 8)).shape
        torch.Size([1, 24, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        expand_ratio: float = 6.0,
        mid_channels: int | None = None,
        se_ratio: float | None = None,
        se_channels: int | None = None,
        se_act_layer: LayerSpec = "relu",
        se_gate_layer: LayerSpec = "sigmoid",
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu6",
        drop_path_rate: float = 0.0,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        nd = check_spatial_dims(spatial_dims)
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        hidden = hidden_width(in_channels, expand_ratio, mid_channels)
        if se_channels is not None:
            check_positive_int("se_channels", se_channels)
        placement: Placement = {"device": device, "dtype": dtype}
        common = {"norm_layer": norm_layer, "spatial_dims": nd, **placement}
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(ConvNormAct(in_channels, hidden, 1, act_layer=act_layer, **common))  # type: ignore[arg-type]
        layers.append(
            ConvNormAct(hidden, hidden, kernel_size, stride=stride, groups=hidden, act_layer=act_layer, **common)  # type: ignore[arg-type]
        )
        if se_ratio is not None or se_channels is not None:
            se = SqueezeExcite(
                hidden,
                rd_ratio=0.25 if se_ratio is None else se_ratio,  # unused when se_channels is given
                rd_channels=se_channels,
                act_layer=se_act_layer,
                gate_layer=se_gate_layer,
                spatial_dims=nd,
                **placement,
            )
            layers.append(se)
        layers.append(ConvNormAct(hidden, out_channels, 1, act_layer=None, **common))  # type: ignore[arg-type]
        has_shortcut = stride == 1 and in_channels == out_channels
        super().__init__(
            nn.Sequential(*layers),
            None,
            act_layer=None,
            drop_path_rate=drop_path_rate if has_shortcut else 0.0,
            has_shortcut=has_shortcut,
            **placement,
        )
        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, nd
        self._narrow = hidden == 1 or out_channels == 1


class MBConv(InvertedResidual):
    """The mobile inverted bottleneck of EfficientNet (Tan and Le 2019) and MobileNet v3 (Howard et al. 2019).

    An :class:`~blockzoo.InvertedResidual` (1x1 expansion, depthwise conv,
    linear 1x1 projection; this class only changes its defaults) with a
    :class:`~blockzoo.SqueezeExcite` on the expanded map whose activation and
    gate are options: EfficientNet's is SiLU and sigmoid, MobileNet v3's ReLU
    and hard sigmoid. The sum with the
    input, and stochastic depth on the branch, happen only when the shape is
    kept (stride 1 and ``in_channels == out_channels``). The children are
    named as in every residual block (``branch``, ``shortcut``,
    ``drop_path``), and the branch holds ``[expand,] depthwise, [se,]
    project`` in forward order, the order of torchvision's ``MBConv`` and
    MobileNet v3 ``InvertedResidual`` state dicts.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        kernel_size: Depthwise window.
        stride: Depthwise stride.
        expand_ratio: Hidden width over ``in_channels`` (no expansion conv
            when the hidden width equals ``in_channels``).
        mid_channels: The hidden width itself; overrides ``expand_ratio``
            (MobileNet v3 lists its widths).
        se_ratio: Squeeze-excite bottleneck width as a fraction of
            ``in_channels`` (EfficientNet's convention, rounded down, at
            least 1), or ``None`` for no squeeze-excite. Not the
            :class:`~blockzoo.InvertedResidual` convention, a fraction of the
            hidden width: this block passes the width on as ``se_channels``.
        se_channels: The bottleneck width itself; overrides ``se_ratio``.
        se_act_layer: Activation inside the squeeze-excite bottleneck.
        se_gate_layer: The squeeze-excite gate (``"sigmoid"``, or
            ``"hardsigmoid"`` as in MobileNet v3).
        norm_layer: As in :class:`~blockzoo.ConvNormAct`.
        act_layer: Activation of the expansion and depthwise convs.
        drop_path_rate: Stochastic-depth probability (only with a shortcut).
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *ceil(spatial / stride)]``.

    Raises:
        ValueError: a channel count, ratio or probability out of range.

    Example:
        >>> import torch
        >>> from blockzoo import MBConv
        >>> block = MBConv(16, 16, 5)
        >>> [type(m).__name__ for m in block.branch]
        ['ConvNormAct', 'ConvNormAct', 'SqueezeExcite', 'ConvNormAct']
        >>> block.branch[2].fc1, block.branch[2].act
        (Conv2d(96, 4, kernel_size=(1, 1), stride=(1, 1)), SiLU(inplace=True))
        >>> block(torch.randn(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
        >>> v3 = MBConv(40, 40, 5, mid_channels=120, se_channels=32, se_act_layer="relu",
        ...             se_gate_layer="hardsigmoid", act_layer="hardswish")
        >>> v3.branch[2].gate
        Hardsigmoid()
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        expand_ratio: float = 6.0,
        mid_channels: int | None = None,
        se_ratio: float | None = 0.25,
        se_channels: int | None = None,
        se_act_layer: LayerSpec = "silu",
        se_gate_layer: LayerSpec = "sigmoid",
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "silu",
        drop_path_rate: float = 0.0,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if se_channels is None and se_ratio is not None:
            ratio = check_number("se_ratio", se_ratio, low=0, high=1, low_open=True)
            se_channels = max(1, int(check_positive_int("in_channels", in_channels) * ratio))  # torchvision's in // 4
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            expand_ratio=expand_ratio,
            mid_channels=mid_channels,
            se_channels=se_channels,
            se_act_layer=se_act_layer,
            se_gate_layer=se_gate_layer,
            norm_layer=norm_layer,
            act_layer=act_layer,
            drop_path_rate=drop_path_rate,
            spatial_dims=spatial_dims,
            device=device,
            dtype=dtype,
        )


class FusedMBConv(_ChannelsResidual):
    """EfficientNet v2's fused block (Tan and Le 2021): one full conv in place of the expansion and depthwise convs.

    With an expansion (hidden width other than ``in_channels``) the branch is
    a ``kernel_size`` conv to the hidden width, then a linear 1x1
    projection; without one it is a single ``kernel_size`` conv with its
    activation, as in torchvision's ``FusedMBConv``. The sum with the input
    and stochastic depth happen only when the shape is kept. Early stages of
    EfficientNet v2 use it, where a depthwise conv is slow on accelerators.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        kernel_size: Window of the fused conv.
        stride: Stride of the fused conv.
        expand_ratio: Hidden width over ``in_channels``.
        mid_channels: The hidden width itself; overrides ``expand_ratio``.
        norm_layer: As in :class:`~blockzoo.ConvNormAct`.
        act_layer: Activation of the fused conv.
        drop_path_rate: Stochastic-depth probability (only with a shortcut).
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *ceil(spatial / stride)]``.

    Raises:
        ValueError: a channel count, ratio or probability out of range.

    Example:
        >>> import torch
        >>> from blockzoo import FusedMBConv
        >>> block = FusedMBConv(24, 48, stride=2, expand_ratio=4)
        >>> [m.conv for m in block.branch]
        [Conv2d(24, 96, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False), Conv2d(96, 48, kernel_size=(1, 1), stride=(1, 1), bias=False)]
        >>> block(torch.randn(2, 24, 8, 8)).shape, block.has_shortcut
        (torch.Size([2, 48, 4, 4]), False)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        expand_ratio: float = 4.0,
        mid_channels: int | None = None,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "silu",
        drop_path_rate: float = 0.0,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        nd = check_spatial_dims(spatial_dims)
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        hidden = hidden_width(in_channels, expand_ratio, mid_channels)
        placement: Placement = {"device": device, "dtype": dtype}
        common = {"norm_layer": norm_layer, "spatial_dims": nd, **placement}
        if hidden != in_channels:
            layers = [
                ConvNormAct(in_channels, hidden, kernel_size, stride=stride, act_layer=act_layer, **common),  # type: ignore[arg-type]
                ConvNormAct(hidden, out_channels, 1, act_layer=None, **common),  # type: ignore[arg-type]
            ]
        else:
            layers = [ConvNormAct(in_channels, out_channels, kernel_size, stride=stride, act_layer=act_layer, **common)]  # type: ignore[arg-type]
        has_shortcut = stride == 1 and in_channels == out_channels
        super().__init__(
            nn.Sequential(*layers),
            None,
            act_layer=None,
            drop_path_rate=drop_path_rate if has_shortcut else 0.0,
            has_shortcut=has_shortcut,
            **placement,
        )
        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, nd
        self._narrow = hidden == 1 or out_channels == 1
