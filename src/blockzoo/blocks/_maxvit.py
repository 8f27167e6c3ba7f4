"""MaxViT's blocks (Tu et al. 2022): relative-position attention, window and grid partition attention, the MaxViT block."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blockzoo._checks import check_choice, check_number, check_positive_int, check_probability
from blockzoo._types import DeviceLike
from blockzoo.blocks._attention import _PreNormResidual, relative_position_bias, reset_relative_position_table
from blockzoo.blocks._base import ChannelsFirstBlock, TokenBlock
from blockzoo.blocks._conv import ConvNormAct
from blockzoo.blocks._mlp import MLP, mlp_hidden_features
from blockzoo.blocks._residual import _ChannelsResidual
from blockzoo.blocks._se import SqueezeExcite
from blockzoo.errors import InputError
from blockzoo.layers import LayerSpec, Placement, build_layer, keep_channels_last
from blockzoo.roles import Role

__all__ = ["MaxViTBlock", "MaxViTMBConv", "PartitionAttention", "RelativePositionAttention"]

#: MaxViT's batch norm (the paper's and torchvision's eps and momentum).
MAXVIT_BATCH_NORM = functools.partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)


class RelativePositionAttention(TokenBlock):
    """Multi-head self-attention over a ``window_size x window_size`` window, with a learned relative position bias.

    Each head adds to its attention logits a bias that depends only on the
    offset between the two positions, read from ``relative_position_bias_table``
    (one row per offset, ``(2 * window_size - 1) ** 2`` rows, role
    :attr:`~blockzoo.Role.EMBEDDING`, so no weight decay by default). The bias
    goes in as the float mask of :func:`torch.nn.functional.scaled_dot_product_attention`.
    The ``qkv`` and ``proj`` projections are laid out as in
    :class:`~blockzoo.MultiHeadSelfAttention`.

    Args:
        dim: Width of each token.
        head_dim: Width of each head; must divide ``dim``.
        window_size: Side of the window; the input has ``window_size ** 2`` tokens.
        scale: Factor of the logits; ``None`` for ``head_dim ** -0.5``
            (torchvision's MaxViT uses ``dim ** -0.5``).
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, window_size ** 2, dim]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import RelativePositionAttention
        >>> attn = RelativePositionAttention(64, head_dim=16, window_size=7)
        >>> attn.relative_position_bias_table.shape, attn.param_roles()["relative_position_bias_table"]
        (torch.Size([169, 4]), <Role.EMBEDDING: 'embedding'>)
        >>> attn(torch.randn(2, 49, 64)).shape
        torch.Size([2, 49, 64])
    """

    def __init__(
        self,
        dim: int,
        *,
        head_dim: int = 32,
        window_size: int = 7,
        scale: float | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.head_dim = check_positive_int("head_dim", head_dim)
        if dim % head_dim:
            raise ValueError(f"head_dim must divide dim ({dim}). Received: head_dim={head_dim}")
        self.num_heads = dim // head_dim
        self.window_size = check_positive_int("window_size", window_size)
        self.scale = head_dim**-0.5 if scale is None else check_number("scale", scale, low=0, low_open=True)
        rows = (2 * window_size - 1) ** 2
        self.relative_position_bias_table = nn.Parameter(torch.empty(rows, self.num_heads, device=device, dtype=dtype))
        self.qkv = nn.Linear(dim, 3 * dim, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)
        self.reset_parameters()

    def own_param_roles(self) -> Mapping[str, Role]:
        return {"relative_position_bias_table": Role.EMBEDDING}

    def reset_parameters(self) -> None:
        super().reset_parameters()
        reset_relative_position_table(self)

    def relative_position_bias(self) -> Tensor:
        """The bias added to each head's logits, ``[num_heads, window_size ** 2, window_size ** 2]``."""
        return relative_position_bias(self.relative_position_bias_table, self.window_size)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        n, length, _ = x.shape
        if length != self.window_size**2:
            raise InputError(
                f"{type(self).__name__} takes windows of {self.window_size}x{self.window_size} = "
                f"{self.window_size**2} tokens. Received: input of shape {list(x.shape)}"
            )
        # [N, L, 3 * dim] -> [3, N, heads, L, head_dim]
        qkv = self.qkv(x).view(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=self.relative_position_bias().to(q.dtype), scale=self.scale
        )
        return self.proj(out.transpose(1, 2).reshape(n, length, self.dim))  # type: ignore[no-any-return]

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = super().output_shape(input_shape)
        if shape[1] != self.window_size**2:
            raise InputError(
                f"{type(self).__name__} takes windows of {self.window_size**2} tokens. Received: input_shape="
                f"{list(shape)}"
            )
        return shape

    def extra_repr(self) -> str:
        return f"{self.dim}, head_dim={self.head_dim}, window_size={self.window_size}"


class PartitionAttention(ChannelsFirstBlock):
    """MaxViT's block or grid attention on a map: partition, a pre-norm transformer layer, departition.

    ``partition="window"`` cuts the map into non-overlapping
    ``partition_size x partition_size`` windows (local attention);
    ``partition="grid"`` lays a ``partition_size x partition_size`` grid over
    the whole map, each group taking one position of every cell (sparse global
    attention). Within each group, ``x + attn(norm(x))`` with a
    :class:`RelativePositionAttention`, then ``x + mlp(norm(x))``; each half
    is a residual block (``attention`` and ``feedforward``, with their
    ``branch`` and ``drop_path``), as in :class:`~blockzoo.TransformerBlock`.
    This is torchvision's ``PartitionAttentionLayer``.

    Args:
        in_channels: Channels of the map (the tokens' width).
        partition: ``"window"`` or ``"grid"``.
        partition_size: Side of the windows, or of the grid.
        head_dim: Width of each attention head; must divide ``in_channels``.
        mlp_ratio: Hidden width of the MLP over ``in_channels``.
        attn_scale: Factor of the attention logits; ``None`` for ``head_dim ** -0.5``.
        proj_drop_rate: Dropout after the attention (torchvision's ``attention_dropout``).
        drop_rate: Dropout after the MLP (torchvision's ``mlp_dropout``).
        drop_path_rate: Stochastic-depth probability of each half.
        norm_layer: Norm over the tokens' width (torch's layer norm).
        act_layer: Activation of the MLP.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, H, W]``, ``H`` and ``W`` multiples of ``partition_size``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import PartitionAttention
        >>> block = PartitionAttention(64, partition="grid", partition_size=7)
        >>> [name for name, _ in block.attention.branch.named_children()]
        ['norm', 'attn', 'drop']
        >>> block(torch.randn(2, 64, 14, 21)).shape
        torch.Size([2, 64, 14, 21])
    """

    def __init__(
        self,
        in_channels: int,
        *,
        partition: str = "window",
        partition_size: int = 7,
        head_dim: int = 32,
        mlp_ratio: float = 4.0,
        attn_scale: float | None = None,
        proj_drop_rate: float = 0.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: LayerSpec = "layernorm",
        act_layer: LayerSpec = "gelu",
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.spatial_dims = 2
        self.partition = check_choice("partition", partition, ("window", "grid"))
        self.partition_size = check_positive_int("partition_size", partition_size)
        hidden = mlp_hidden_features("in_channels", in_channels, mlp_ratio)
        check_probability("proj_drop_rate", proj_drop_rate)
        check_probability("drop_rate", drop_rate)
        placement: Placement = {"device": device, "dtype": dtype}
        attn = RelativePositionAttention(
            in_channels, head_dim=head_dim, window_size=partition_size, scale=attn_scale, **placement
        )
        attention = OrderedDict(
            norm=build_layer("norm", norm_layer, in_channels, spatial_dims=0, **placement),
            attn=attn,
            drop=build_layer("dropout", "dropout" if proj_drop_rate else None, proj_drop_rate),
        )
        self.attention = _PreNormResidual(nn.Sequential(attention), drop_path_rate=drop_path_rate)
        feedforward = OrderedDict(
            norm=build_layer("norm", norm_layer, in_channels, spatial_dims=0, **placement),
            mlp=MLP(in_channels, (hidden,), in_channels, act_layer=act_layer, **placement),
            drop=build_layer("dropout", "dropout" if drop_rate else None, drop_rate),
        )
        self.feedforward = _PreNormResidual(nn.Sequential(feedforward), drop_path_rate=drop_path_rate)

    def _groups(self, shape: Sequence[int], dtype: torch.dtype | None) -> tuple[int, int]:
        """The number of windows (or grid cells) along H and W."""
        p = self.partition_size
        if shape[2] % p or shape[3] % p:
            raise self._layout_error(shape, dtype, f"H and W must be multiples of partition_size={p}")
        return shape[2] // p, shape[3] // p

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        n, c, h, w = x.shape
        gh, gw = self._groups(x.shape, x.dtype)
        p = self.partition_size
        if self.partition == "window":  # [N, C, gh, p, gw, p] -> [N, gh, gw, p, p, C]
            tokens = x.reshape(n, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1)
        else:  # [N, C, p, gh, p, gw] -> [N, gh, gw, p, p, C]: each group takes one pixel of every cell
            tokens = x.reshape(n, c, p, gh, p, gw).permute(0, 3, 5, 2, 4, 1)
        tokens = self.feedforward(self.attention(tokens.reshape(n * gh * gw, p * p, c)))
        grouped = tokens.view(n, gh, gw, p, p, c)
        back = (0, 5, 1, 3, 2, 4) if self.partition == "window" else (0, 5, 3, 1, 4, 2)  # the inverse permutations
        return keep_channels_last(x, grouped.permute(back).reshape(n, c, h, w))

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = self._check_shape(input_shape)
        self._groups(shape, None)
        return torch.Size(shape)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, partition={self.partition!r}, partition_size={self.partition_size}"


class MaxViTMBConv(_ChannelsResidual):
    """MaxViT's MBConv: a pre-norm inverted residual with squeeze-excite, always with a shortcut.

    The branch is batch norm, 1x1 expansion to ``expand_ratio * out_channels``,
    a 3x3 depthwise conv (carrying the stride), a :class:`~blockzoo.SqueezeExcite`
    (SiLU, ``se_ratio * out_channels`` wide) and a 1x1 projection with a bias
    and no norm. When the shape changes the shortcut is a 3x3 stride-2 average
    pool (for stride 2) and a 1x1 conv with a bias; stochastic depth drops
    the branch. This is torchvision's ``maxvit.MBConv``.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        stride: 1 or 2.
        expand_ratio: Hidden width over ``out_channels``.
        se_ratio: Squeeze-excite width over ``out_channels``.
        norm_layer: The norm (pre-norm and after the expansion and depthwise convs).
        act_layer: Activation of the expansion and depthwise convs.
        drop_path_rate: Stochastic-depth probability.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, H, W]``.
        - Output: ``[N, out_channels, ceil(H / stride), ceil(W / stride)]``.

    Example:
        >>> import torch
        >>> from blockzoo import MaxViTMBConv
        >>> block = MaxViTMBConv(32, 64, stride=2)
        >>> block.shortcut
        Sequential(
          (0): AvgPool2d(kernel_size=3, stride=2, padding=1)
          (1): Conv2d(32, 64, kernel_size=(1, 1), stride=(1, 1))
        )
        >>> block(torch.randn(2, 32, 14, 14)).shape
        torch.Size([2, 64, 7, 7])
    """

    #: The branch ends in a conv with a bias and no norm, which ``zero_init_last_`` zeroes.
    zero_init_roles = (Role.WEIGHT,)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        expand_ratio: float = 4.0,
        se_ratio: float = 0.25,
        norm_layer: LayerSpec = MAXVIT_BATCH_NORM,
        act_layer: LayerSpec = "gelu",
        drop_path_rate: float = 0.0,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        if stride not in (1, 2) or isinstance(stride, bool):
            raise ValueError(f"stride must be 1 or 2. Received: stride={stride!r}")
        hidden = int(out_channels * check_number("expand_ratio", expand_ratio, low=0, low_open=True))
        squeeze = int(out_channels * check_number("se_ratio", se_ratio, low=0, high=1, low_open=True))
        if hidden < 1 or squeeze < 1:
            raise ValueError(
                "expand_ratio and se_ratio must leave at least one channel of out_channels "
                f"({out_channels}). Received: expand_ratio={expand_ratio}, se_ratio={se_ratio}"
            )
        placement: Placement = {"device": device, "dtype": dtype}
        common = {"norm_layer": norm_layer, "act_layer": act_layer, **placement}
        branch = nn.Sequential(
            build_layer("norm", norm_layer, in_channels, spatial_dims=2, **placement),
            ConvNormAct(in_channels, hidden, 1, **common),  # type: ignore[arg-type]
            ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden, **common),  # type: ignore[arg-type]
            SqueezeExcite(hidden, rd_channels=squeeze, act_layer="silu", **placement),
            ConvNormAct(hidden, out_channels, 1, bias=True, norm_layer=None, act_layer=None, **placement),
        )
        shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            project = nn.Conv2d(in_channels, out_channels, 1, **placement)
            shortcut = nn.Sequential(nn.AvgPool2d(3, stride, 1), project) if stride == 2 else nn.Sequential(project)
        super().__init__(branch, shortcut, drop_path_rate=drop_path_rate, **placement)
        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, 2
        self.reset_parameters()


class MaxViTBlock(ChannelsFirstBlock):
    """One MaxViT layer: a :class:`MaxViTMBConv`, then window attention, then grid attention.

    The children ``mbconv``, ``window`` and ``grid`` (two
    :class:`PartitionAttention`) are torchvision's ``MaxVitLayer``. All three
    residual blocks share ``drop_path_rate``, as in torchvision.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output.
        stride: Stride of the MBConv (1 or 2).
        expand_ratio: The MBConv's hidden width over ``out_channels``.
        se_ratio: The MBConv's squeeze-excite width over ``out_channels``.
        partition_size: Side of the windows and of the grid.
        head_dim: Width of each attention head.
        mlp_ratio: Hidden width of the MLPs over ``out_channels``.
        attn_scale: Factor of the attention logits; ``None`` for ``head_dim ** -0.5``.
        proj_drop_rate: Dropout after each attention.
        drop_rate: Dropout after each MLP.
        drop_path_rate: Stochastic-depth probability of every residual block.
        norm_layer: The MBConv's norm.
        act_layer: Activation of the MBConv and the MLPs.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, in_channels, H, W]``.
        - Output: ``[N, out_channels, ceil(H / stride), ceil(W / stride)]``, whose
          sides must be multiples of ``partition_size``.

    Example:
        >>> import torch
        >>> from blockzoo import MaxViTBlock
        >>> block = MaxViTBlock(32, 64, stride=2)
        >>> [name for name, _ in block.named_children()]
        ['mbconv', 'window', 'grid']
        >>> block(torch.randn(1, 32, 28, 28)).shape
        torch.Size([1, 64, 14, 14])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        expand_ratio: float = 4.0,
        se_ratio: float = 0.25,
        partition_size: int = 7,
        head_dim: int = 32,
        mlp_ratio: float = 4.0,
        attn_scale: float | None = None,
        proj_drop_rate: float = 0.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: LayerSpec = MAXVIT_BATCH_NORM,
        act_layer: LayerSpec = "gelu",
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.spatial_dims = in_channels, out_channels, 2
        placement: Placement = {"device": device, "dtype": dtype}
        self.mbconv = MaxViTMBConv(
            in_channels,
            out_channels,
            stride=stride,
            expand_ratio=expand_ratio,
            se_ratio=se_ratio,
            norm_layer=norm_layer,
            act_layer=act_layer,
            drop_path_rate=drop_path_rate,
            **placement,
        )
        common = {
            "partition_size": partition_size,
            "head_dim": head_dim,
            "mlp_ratio": mlp_ratio,
            "attn_scale": attn_scale,
            "proj_drop_rate": proj_drop_rate,
            "drop_rate": drop_rate,
            "drop_path_rate": drop_path_rate,
            "act_layer": act_layer,
            **placement,
        }
        self.window = PartitionAttention(out_channels, partition="window", **common)  # type: ignore[arg-type]
        self.grid = PartitionAttention(out_channels, partition="grid", **common)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.grid(self.window(self.mbconv(x)))  # type: ignore[no-any-return]

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        shape = self.mbconv.output_shape(self._check_shape(input_shape))
        return self.grid.output_shape(self.window.output_shape(shape))
