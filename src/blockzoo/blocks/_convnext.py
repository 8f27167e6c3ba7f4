"""ConvNeXt's parts: a channels-first layer norm, layer scale, and the ConvNeXt block (Liu et al. 2022)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from blockzoo._checks import check_number, check_positive_int, check_spatial_dims
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import Block, ChannelsFirstBlock
from blockzoo.blocks._layout import layout_error
from blockzoo.blocks._mlp import mlp_hidden_features
from blockzoo.blocks._residual import ResidualBlock
from blockzoo.errors import InputError
from blockzoo.init._records import set_record
from blockzoo.layers import ChannelLayerNorm, LayerSpec, build_layer
from blockzoo.roles import Role

__all__ = ["ConvNeXtBlock", "LayerNorm2d", "LayerScale"]

#: The layer norm of ConvNeXt and the vision transformers: torch's, with eps 1e-6.
LAYER_NORM_EPS6 = functools.partial(nn.LayerNorm, eps=1e-6)


class LayerNorm2d(ChannelLayerNorm, ChannelsFirstBlock):
    """Layer norm over the channels of an image map ``[N, C, H, W]``, keeping channels_last memory.

    :class:`~blockzoo.layers.ChannelLayerNorm` (what the ``"layernorm"`` norm
    name builds for maps) with the block contract: a checked input layout and
    a static ``output_shape``. Each position's ``C`` values are
    normalised, as in ConvNeXt's stem and downsampling layers; a channels_last
    input stays channels_last. Its parameters have the role ``norm``.

    Args:
        num_channels: ``C``.
        eps: Added to the variance.
        elementwise_affine: Learn a per-channel scale and shift.
        bias: Learn the shift.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, num_channels, H, W]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import LayerNorm2d
        >>> norm = LayerNorm2d(8, eps=1e-6)
        >>> norm
        LayerNorm2d((8,), eps=1e-06, elementwise_affine=True, bias=True)
        >>> x = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last)
        >>> norm(x).is_contiguous(memory_format=torch.channels_last)
        True
    """

    def __init__(
        self,
        num_channels: int,
        *,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_positive_int("num_channels", num_channels)
        check_number("eps", eps, low=0, low_open=True)
        super().__init__(num_channels, eps, elementwise_affine, bias, device=device, dtype=dtype)
        self.in_channels, self.spatial_dims = num_channels, 2

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return super().forward(x)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return torch.Size(self._check_shape(input_shape))


class LayerScale(Block):
    """Multiply each channel by a learned scale that starts small (Touvron et al. 2021, CaiT).

    The scale ``gamma`` has the role ``scale``, so the optimizer factory
    exempts it from weight decay by default (``no_weight_decay_roles``).
    With ``spatial_dims=0`` the channels are the last dimension (tokens
    ``[N, L, C]``, as in a transformer block); with 1, 2 or 3 they are
    dimension 1 of a map, and ``gamma`` has the shape ``[C, 1, ...]``, as in
    torchvision's ConvNeXt.

    Args:
        channels: ``C``.
        init_value: The starting value of every scale.
        spatial_dims: 0 for channels last (tokens), else 1, 2 or 3 for maps.
        device: Where the parameter is created.
        dtype: Its dtype.

    Shape:
        - Input: ``[N, *, C]`` (``spatial_dims=0``) or ``[N, C, *spatial]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import LayerScale
        >>> scale = LayerScale(8, init_value=0.1)
        >>> scale.gamma.shape, scale.param_roles()
        (torch.Size([8]), {'gamma': <Role.SCALE: 'scale'>})
        >>> scale(torch.ones(2, 5, 8))[0, 0]
        tensor([0.1000, 0.1000, 0.1000, 0.1000, 0.1000, 0.1000, 0.1000, 0.1000], grad_fn=<SelectBackward0>)
        >>> LayerScale(8, spatial_dims=2).gamma.shape
        torch.Size([8, 1, 1])
    """

    def __init__(
        self,
        channels: int,
        *,
        init_value: float = 1e-6,
        spatial_dims: int = 0,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.init_value = check_number("init_value", init_value)
        self.spatial_dims = check_spatial_dims(spatial_dims, (0, 1, 2, 3))
        self.gamma = nn.Parameter(torch.empty((channels, *[1] * spatial_dims), device=device, dtype=dtype))
        self.reset_parameters()

    def own_param_roles(self) -> Mapping[str, Role]:
        return {"gamma": Role.SCALE}

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, self.init_value)
        set_record(self, "gamma", f"constant(val={self.init_value!r})", 0.0)

    def _fits(self, shape: Sequence[int]) -> bool:
        if self.spatial_dims == 0:
            return len(shape) >= 2 and shape[-1] == self.channels
        return len(shape) == self.spatial_dims + 2 and shape[1] == self.channels

    def _input_error(self, shape: Sequence[int], dtype: torch.dtype | None) -> InputError:
        nd = self.spatial_dims
        expected = f"[N, *, {self.channels}]" if nd == 0 else f"[N, {self.channels}, *spatial] ({nd} spatial dims)"
        return layout_error(
            type(self).__name__,
            shape,
            dtype,
            expected=expected,
            channels=self.channels,
            rank=max(2, len(shape)) if nd == 0 else nd + 2,
            channel_dim=-1 if nd == 0 else 1,
        )

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point() or not self._fits(x.shape):
            raise self._input_error(x.shape, x.dtype)
        return x * self.gamma

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        if not self._fits(input_shape):
            raise self._input_error(input_shape, None)
        return torch.Size(input_shape)

    def extra_repr(self) -> str:
        dims = f", spatial_dims={self.spatial_dims}" if self.spatial_dims else ""
        return f"{self.channels}, init_value={self.init_value:g}{dims}"


class _ConvNeXtBranch(nn.Module):
    """ConvNeXt's residual branch, flat as torchvision's: depthwise conv, then norm, fc1, act, fc2 on each position, then layer scale."""

    def __init__(
        self, dw: nn.Module, norm: nn.Module, fc1: nn.Module, act: nn.Module, fc2: nn.Module, layer_scale: nn.Module
    ) -> None:
        super().__init__()
        self.dw, self.norm, self.fc1, self.act, self.fc2, self.layer_scale = dw, norm, fc1, act, fc2, layer_scale

    def forward(self, x: Tensor) -> Tensor:
        # Each part is called in turn on the previous one's output, as in torchvision's nn.Sequential, so each
        # intermediate is released as soon as the next part returns (the norm's once fc1 has read it).
        y = self.dw(x).permute(0, 2, 3, 1)  # [N, H, W, C]: the next four act on each position's channels
        y = self.norm(y)
        y = self.fc1(y)
        y = self.act(y)
        y = self.fc2(y)
        out: Tensor = self.layer_scale(y.permute(0, 3, 1, 2))  # back to [N, C, H, W]
        return out


class ConvNeXtBlock(ResidualBlock, ChannelsFirstBlock):
    """The ConvNeXt block (Liu et al. 2022): depthwise 7x7 -> norm -> MLP -> layer scale -> drop path, plus the input.

    The norm and the MLP (two linear layers, 4x wide, GELU between) act on each
    position's channels: the branch moves the channels last for them, as
    torchvision does, and back. The branch is flat, as torchvision's
    ``nn.Sequential`` is: its parts are ``branch.dw``, ``branch.norm``,
    ``branch.fc1``, ``branch.act``, ``branch.fc2`` and ``branch.layer_scale``
    (a :class:`LayerScale`, or ``nn.Identity`` with ``layer_scale_init=None``),
    each called as a module in that order. :meth:`zero_init_last_` zeroes the
    layer scale (without one, ``fc2``), so the block starts as the identity.

    Args:
        channels: Channels of the input and output.
        kernel_size: Depthwise window; odd, so that the map keeps its size.
        mlp_ratio: Hidden width of the MLP over ``channels``.
        layer_scale_init: Starting value of the layer scale, or ``None`` for none.
        norm_layer: A norm over the last dimension (it sees ``[N, H, W, C]``):
            torch's layer norm with eps 1e-6 by default; ``"layernorm"``, a
            callable or ``None``.
        act_layer: Activation between ``fc1`` and ``fc2`` (built out of place).
        drop_path_rate: Stochastic-depth probability.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, channels, H, W]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import ConvNeXtBlock
        >>> block = ConvNeXtBlock(32)
        >>> block.branch.dw
        Conv2d(32, 32, kernel_size=(7, 7), stride=(1, 1), padding=(3, 3), groups=32)
        >>> block.branch.fc1, block.branch.act
        (Linear(in_features=32, out_features=128, bias=True), GELU(approximate='none'))
        >>> block.branch.fc2, block.branch.layer_scale
        (Linear(in_features=128, out_features=32, bias=True), LayerScale(32, init_value=1e-06, spatial_dims=2))
        >>> block(torch.randn(2, 32, 8, 8)).shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 7,
        *,
        mlp_ratio: float = 4.0,
        layer_scale_init: float | None = 1e-6,
        norm_layer: LayerSpec = LAYER_NORM_EPS6,
        act_layer: LayerSpec = "gelu",
        drop_path_rate: float = 0.0,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_positive_int("channels", channels)
        if check_positive_int("kernel_size", kernel_size) % 2 == 0:
            raise ValueError(
                "kernel_size must be odd, so that the depthwise conv keeps the map's size. "
                f"Received: kernel_size={kernel_size!r}"
            )
        hidden = mlp_hidden_features("channels", channels, mlp_ratio)
        dw = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, device=device, dtype=dtype
        )
        norm = build_layer("norm", norm_layer, channels, spatial_dims=0, device=device, dtype=dtype)
        fc1 = nn.Linear(channels, hidden, device=device, dtype=dtype)
        # out of place: fc1's output on [N, H, W, C] is a view of its 2-D product, which autograd would copy
        # back slice by slice after an in-place activation (GELU, the default, has no in-place form anyway)
        act = build_layer("act", act_layer, spatial_dims=0, device=device, dtype=dtype)
        fc2 = nn.Linear(hidden, channels, device=device, dtype=dtype)
        scale: nn.Module = (
            nn.Identity()
            if layer_scale_init is None
            else LayerScale(channels, init_value=layer_scale_init, spatial_dims=2, device=device, dtype=dtype)
        )
        super().__init__(_ConvNeXtBranch(dw, norm, fc1, act, fc2, scale), drop_path_rate=drop_path_rate)
        self.in_channels, self.out_channels, self.spatial_dims = channels, channels, 2
        self.kernel_size = kernel_size
        self.reset_parameters()

    #: The branch always returns a new tensor (never the block's input): add the input into it in place.
    _add_in_place = True

    #: The branch ends in its layer scale (or, without one, fc2), after its norm.
    zero_init_roles = (Role.SCALE, Role.WEIGHT)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return super().forward(x)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        return torch.Size(self._check_shape(input_shape))
