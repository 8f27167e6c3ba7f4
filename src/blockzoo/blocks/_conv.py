"""Convolutional blocks: conv -> norm -> act, and the stages built from it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeGuard

import torch
from torch import Tensor, nn

from blockzoo._checks import (
    check_choice,
    check_int_tuple,
    check_positive_int,
    check_probability,
    check_spatial_dims,
)
from blockzoo._layer_kinds import WINDOW_POOLS
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import ChannelsFirstBlock
from blockzoo.layers import LayerSpec, Placement, build_layer
from blockzoo.shapes import infer_shape

__all__ = ["ConvBlock", "ConvNormAct", "DepthwiseSeparableConv"]

_ORDERS = ("conv-norm-act", "norm-act-conv")


class ConvNormAct(ChannelsFirstBlock):
    """Convolution, normalisation and activation, in either order.

    The workhorse of every CNN: ``conv -> norm -> act`` (or the pre-activation
    ``norm -> act -> conv``). ``padding=None`` keeps the spatial size at stride 1,
    and ``bias=None`` gives the conv a bias only when the block has no norm
    (the norm's shift makes it redundant).

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        kernel_size: Conv window, an int or one per spatial dimension.
        stride: Conv stride.
        padding: Conv padding; ``None`` for ``dilation * (kernel_size - 1) // 2``.
        dilation: Conv dilation.
        groups: Conv groups; must divide both channel counts.
        bias: Whether the conv has a bias; ``None`` for "only without a norm".
        norm_layer: A registered norm name, a callable
            ``(num_features, device=, dtype=) -> Module``, or ``None``.
        act_layer: A registered activation name, a callable ``() -> Module``,
            or ``None``.
        order: ``"conv-norm-act"`` or ``"norm-act-conv"`` (pre-activation).
        spatial_dims: 1, 2 or 3 for ``Conv1d``, ``Conv2d`` or ``Conv3d``.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *spatial_out]``, where each spatial size
          follows :class:`torch.nn.Conv2d`'s formula.

    Raises:
        ValueError: a channel count, size or option is out of range.
        TypeError: a layer spec is neither a name, a callable nor ``None``.
        UnknownNameError: a layer name is not registered.

    Example:
        >>> import torch
        >>> from blockzoo import ConvNormAct
        >>> block = ConvNormAct(3, 16, 3, stride=2)
        >>> block
        ConvNormAct(
          (conv): Conv2d(3, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)
          (norm): BatchNorm2d(16, eps=1e-05, momentum=0.1, ...)
          (act): ReLU(inplace=True)
        )
        >>> block(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 16, 16, 16])
        >>> block.output_shape((2, 3, 32, 32))
        torch.Size([2, 16, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        *,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | None = None,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool | None = None,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        order: str = "conv-norm-act",
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = nd = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        kernel = check_int_tuple("kernel_size", kernel_size, nd)
        strides = check_int_tuple("stride", stride, nd)
        dilations = check_int_tuple("dilation", dilation, nd)
        pads = (
            tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilations, strict=False))
            if padding is None
            else check_int_tuple("padding", padding, nd, minimum=0)
        )
        check_positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups must divide both in_channels ({in_channels}) and out_channels ({out_channels}). "
                f"Received: groups={groups}"
            )
        if bias is not None and not isinstance(bias, bool):
            raise TypeError(f"bias must be True, False or None. Received: bias={bias!r}")
        self.order = check_choice("order", order, _ORDERS)
        placement: Placement = {"device": device, "dtype": dtype}
        norm_channels = in_channels if order == "norm-act-conv" else out_channels
        norm = build_layer("norm", norm_layer, norm_channels, spatial_dims=nd, **placement)
        # In place where the activation's input is a tensor this block made (never the block's input).
        act = build_layer(
            "act", act_layer, spatial_dims=nd, inplace=order == "conv-norm-act" or norm_layer is not None, **placement
        )
        conv = build_layer(
            "conv",
            "conv",
            in_channels,
            out_channels,
            kernel,
            stride=strides,
            padding=pads,
            dilation=dilations,
            groups=groups,
            bias=(norm_layer is None) if bias is None else bias,
            spatial_dims=nd,
            **placement,
        )
        # Registered in forward order, so print(block) reads top to bottom.
        if self.order == "norm-act-conv":
            self._set_stages("norm", "act", "conv")
            self.norm, self.act, self.conv = norm, act, conv
        else:
            self._set_stages("conv", "norm", "act")
            self.conv, self.norm, self.act = conv, norm, act
        self.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        for stage in self._stages:  # self._run_stages(x), without one more call per forward
            x = stage(x)
        return x

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return infer_shape(self.conv, self._check_shape(input_shape))

    def extra_repr(self) -> str:
        return "" if self.order == _ORDERS[0] else f"order={self.order!r}"


def runs_inline(unit: nn.Module) -> TypeGuard[ConvNormAct]:
    """Whether a block that holds ``unit`` runs it as its stages instead of calling it: a plain conv-norm-act unit."""
    return type(unit) is ConvNormAct and unit.order == "conv-norm-act"


def run_units(units: Iterable[nn.Module], x: Tensor) -> Tensor:
    """Run ``units`` in order, each plain :class:`ConvNormAct` as its conv, norm and act (see :func:`runs_inline`).

    As torchvision's blocks call ``conv1``, ``bn1``, ``relu`` in their own
    forward: calling the unit would keep its input alive until its norm and
    activation return (one activation map more at the peak of an eval
    forward) and costs a module call and an input check; here the input is
    released as soon as the conv returns. Any other unit (a subclass with its
    own ``forward``, a squeeze-excite, your own module) is called.
    """
    for unit in units:
        if runs_inline(unit):
            for stage in unit._stages:  # conv, norm, act without the disabled ones (see Block._set_stages)
                x = stage(x)
        else:
            x = unit(x)
    return x


def units_run_inline(units: nn.Sequential) -> dict[nn.Module, nn.Module]:
    """What :func:`run_units` runs without calling it, for :meth:`Block.modules_run_inline`.

    Each plain unit maps to the layer whose output is the unit's output, and
    ``units`` itself (never called either) to its last unit's.
    """
    inline: dict[nn.Module, nn.Module] = {
        unit: next(m for m in (unit.act, unit.norm, unit.conv) if type(m) is not nn.Identity)
        for unit in units
        if runs_inline(unit)
    }
    if len(units):
        inline[units] = inline.get(units[-1], units[-1])
    return inline


class ConvBlock(ChannelsFirstBlock):
    """The course's CNN stage: ``num_convs`` x (conv -> norm -> act), then pool and dropout.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of every conv's output.
        kernel_size: Conv window.
        num_convs: How many :class:`ConvNormAct` in a row; the first maps
            ``in_channels`` to ``out_channels`` and takes ``stride``.
        stride: Stride of the first conv.
        dilation: Conv dilation.
        bias: As in :class:`ConvNormAct`.
        norm_layer: As in :class:`ConvNormAct`.
        act_layer: As in :class:`ConvNormAct`.
        pool_layer: A registered pooling name, a callable ``(pool_size) -> Module``,
            or ``None``.
        pool_size: Window (and stride) of the pooling.
        drop_rate: Dropout probability after the pooling, in ``[0, 1)``.
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *spatial_out]``: the convs keep the size
          at stride 1 and max pooling with ``pool_size=2`` halves it (rounding
          down).

    Raises:
        ValueError: an option is out of range.
        InputError: in ``forward``, a wrong layout, or a spatial size smaller
            than the pooling window.

    Example:
        >>> import torch
        >>> from blockzoo import ConvBlock
        >>> stage = ConvBlock(3, 32)
        >>> stage(torch.randn(4, 3, 32, 32)).shape
        torch.Size([4, 32, 16, 16])
        >>> [name for name, _ in stage.named_children()]
        ['convs', 'pool', 'drop']
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        *,
        num_convs: int = 1,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool | None = None,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        pool_layer: LayerSpec = "max",
        pool_size: int = 2,
        drop_rate: float = 0.0,
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = nd = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_positive_int("num_convs", num_convs)
        self.pool_size = check_positive_int("pool_size", pool_size)
        self.drop_rate = check_probability("drop_rate", drop_rate)
        placement: Placement = {"device": device, "dtype": dtype}
        self.convs = nn.Sequential(
            *(
                ConvNormAct(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    kernel_size,
                    stride=stride if i == 0 else 1,
                    dilation=dilation,
                    bias=bias,
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                    spatial_dims=nd,
                    **placement,
                )
                for i in range(num_convs)
            )
        )
        self._set_stages("pool", "drop")
        self.pool = build_layer("pool", pool_layer, pool_size, spatial_dims=nd, **placement)
        self.drop = build_layer("dropout", "dropout" if drop_rate else None, drop_rate)
        # torch's own message for a map smaller than the window does not say which
        # block or what to do; check it here for the window pools we know.
        window = getattr(self.pool, "kernel_size", 0) if isinstance(self.pool, WINDOW_POOLS) else 0
        self._pool_window = max(window) if isinstance(window, tuple) else int(window)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        y = x
        for conv in self.convs:  # iterating skips nn.Sequential's own call
            y = conv(y)
        try:
            return self._run_stages(y)
        except RuntimeError as error:  # looked into only on failure: a check before every pooling costs time
            if self._pools_to_nothing(y.shape):
                raise self._pool_error(x.shape, y.shape[2:]) from error
            raise

    def _pools_to_nothing(self, shape: Sequence[int]) -> bool:
        """Whether one of our window pools would leave no position of a map of ``shape``."""
        return bool(self._pool_window) and any(side <= 0 for side in infer_shape(self.pool, shape)[2:])

    def modules_run_inline(self) -> dict[nn.Module, nn.Module]:
        """``convs``, whose units ``forward`` calls in turn without calling ``convs``: its last unit gives its output."""
        return {self.convs: self.convs[-1]}

    def _pool_error(self, input_shape: Sequence[int], spatial: Sequence[int]) -> Exception:
        return self._layout_error(
            input_shape,
            None,
            hint=f"the spatial size after the convs, {list(spatial)}, is smaller than the pooling "
            f"window {self._pool_window}; use a larger input or a smaller pool_size.",
        )

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = infer_shape(self.convs, self._check_shape(input_shape))
        if self._pools_to_nothing(shape):
            raise self._pool_error(input_shape, shape[2:])
        return infer_shape(self.pool, shape)


class DepthwiseSeparableConv(ChannelsFirstBlock):
    """A depthwise conv then a pointwise (1x1) conv, each with norm and activation.

    The MobileNet v1 unit (Howard et al. 2017): about ``kernel_size**2`` times
    fewer multiply-adds than a dense conv of the same shape.

    Args:
        in_channels: Channels of the input (and of the depthwise conv).
        out_channels: Channels of the output.
        kernel_size: Depthwise window.
        stride: Depthwise stride.
        dilation: Depthwise dilation.
        bias: As in :class:`ConvNormAct`, for both convs.
        norm_layer: As in :class:`ConvNormAct`, for both convs.
        act_layer: Activation after the depthwise conv.
        pw_act_layer: Activation after the pointwise conv (``None`` for a linear
            projection, as in MobileNet v2's blocks).
        spatial_dims: 1, 2 or 3.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, *spatial]``.
        - Output: ``[N, out_channels, *spatial_out]``.

    Example:
        >>> import torch
        >>> from blockzoo import DepthwiseSeparableConv
        >>> block = DepthwiseSeparableConv(16, 32, stride=2)
        >>> block(torch.randn(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])
        >>> block.dw.conv.groups
        16
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        *,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool | None = None,
        norm_layer: LayerSpec = "batchnorm",
        act_layer: LayerSpec = "relu",
        pw_act_layer: LayerSpec = "relu",
        spatial_dims: int = 2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        common = {
            "bias": bias,
            "norm_layer": norm_layer,
            "spatial_dims": spatial_dims,
            "device": device,
            "dtype": dtype,
        }
        self.dw = ConvNormAct(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            dilation=dilation,
            groups=in_channels,
            act_layer=act_layer,
            **common,  # type: ignore[arg-type]
        )
        self.pw = ConvNormAct(in_channels, out_channels, 1, act_layer=pw_act_layer, **common)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        x = self.pw(self.dw(x))
        return x

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return self.pw.output_shape(self.dw.output_shape(self._check_shape(input_shape)))
