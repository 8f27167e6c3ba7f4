"""Swin Transformer's parts: shifted-window attention, the Swin block and patch merging (Liu et al. 2021).

These blocks work on maps with the channels last, ``[N, H, W, C]``, as
torchvision's and the paper's Swin do: the windows are cut from the grid, and
every linear layer and norm acts on the last dimension.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blockzoo._checks import check_int, check_positive_int, check_probability
from blockzoo._types import DeviceLike
from blockzoo.blocks._attention import pre_norm_halves, relative_position_bias, reset_relative_position_table
from blockzoo.blocks._base import ChannelsLastMapBlock
from blockzoo.blocks._mlp import MLP, mlp_hidden_features
from blockzoo.layers import LayerSpec, Placement, build_layer
from blockzoo.roles import Role

__all__ = ["PatchMerging", "SwinBlock", "WindowAttention"]

#: What torchvision and the paper add to the logits of a pair of tokens from different regions of a shifted window.
_MASKED = -100.0


def _shift_regions(height: int, width: int, window_size: int, shift: tuple[int, int], device: torch.device) -> Tensor:
    """Which region of the rolled map each position came from, ``[height, width]``.

    Rolling the map by the shift brings parts of its far edges next to each
    other; tokens of different regions in one window must not attend to each
    other. Along each axis the last ``window_size`` positions split into those
    before the last ``shift`` and the rest (torchvision's slices).
    """
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    row_region = (rows >= height - window_size).long() + (rows >= height - shift[0]).long()
    col_region = (cols >= width - window_size).long() + (cols >= width - shift[1]).long()
    return row_region[:, None] * 3 + col_region[None, :]


def _windows(x: Tensor, window_size: int) -> Tensor:
    """``[N, H, W, C]`` -> ``[N, windows, window_size**2, C]``, the windows row by row."""
    n, h, w, c = x.shape
    x = x.view(n, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, -1, window_size * window_size, c)


def _unwindow(x: Tensor, height: int, width: int) -> Tensor:
    """The inverse of :func:`_windows`: ``[N, windows, window_size**2, C]`` -> ``[N, height, width, C]``."""
    n, _, length, c = x.shape
    ws = math.isqrt(length)
    x = x.view(n, height // ws, width // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, height, width, c)


class WindowAttention(ChannelsLastMapBlock):
    """Multi-head self-attention inside square windows, optionally shifted, with a relative position bias (Swin v1).

    The map ``[N, H, W, dim]`` is padded with zeros at the bottom and right to
    a multiple of ``window_size``, rolled up and left by ``shift_size`` (no
    roll along a side that holds a single window), and cut into windows; each
    window's tokens attend to each other through
    :func:`torch.nn.functional.scaled_dot_product_attention`, whose additive
    mask carries a learned bias per head and relative offset
    (``relative_position_bias_table``, ``[(2 * window_size - 1) ** 2, num_heads]``,
    role ``embedding``: no weight decay by default) and, in a shifted window,
    ``-100`` between tokens that the roll brought together from distant parts
    of the map. The map is then put back, and the padding cropped. This is
    torchvision's ``ShiftedWindowAttention`` computed through the fused
    attention kernels; with the same weights the outputs are the same.

    The offsets' table index and the shift mask are computed from the
    window size and the map's shape in ``forward`` (torchvision keeps the
    index as a buffer, which the conversion from torchvision skips): they are
    no learned state, and a model built on the meta device and materialised
    with ``to_empty`` needs nothing recomputed.

    Args:
        dim: Channels of the map.
        num_heads: Attention heads; must divide ``dim``.
        window_size: Side of the square windows.
        shift_size: How far the windows are shifted, in ``[0, window_size)``;
            Swin alternates 0 and ``window_size // 2``.
        qkv_bias: Whether the ``qkv`` projection has a bias.
        attn_drop_rate: Dropout on the attention weights, in training.
        proj_drop_rate: Dropout after ``proj``, in training.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, H, W, dim]`` (channels last).
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import WindowAttention
        >>> attn = WindowAttention(32, num_heads=2, window_size=4, shift_size=2)
        >>> attn
        WindowAttention(
          32, num_heads=2, window_size=4, shift_size=2
          (qkv): Linear(in_features=32, out_features=96, bias=True)
          (proj): Linear(in_features=32, out_features=32, bias=True)
          (proj_drop): Identity()
        )
        >>> attn.relative_position_bias_table.shape, attn.param_roles()["relative_position_bias_table"]
        (torch.Size([49, 2]), <Role.EMBEDDING: 'embedding'>)
        >>> attn(torch.randn(2, 10, 12, 32)).shape  # padded to 12 x 12 inside, cropped back
        torch.Size([2, 10, 12, 32])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        window_size: int = 7,
        shift_size: int = 0,
        qkv_bias: bool = True,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_heads = check_positive_int("num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"num_heads must divide dim ({dim}). Received: num_heads={num_heads}")
        self.head_dim = dim // num_heads
        self.window_size = check_positive_int("window_size", window_size)
        self.shift_size = check_int("shift_size", shift_size, low=0)
        if shift_size >= window_size:
            raise ValueError(
                f"shift_size must be smaller than window_size ({window_size}): a shift by a whole window moves "
                f"nothing. Received: shift_size={shift_size}"
            )
        self.attn_drop_rate = check_probability("attn_drop_rate", attn_drop_rate)
        check_probability("proj_drop_rate", proj_drop_rate)
        table = ((2 * window_size - 1) ** 2, num_heads)
        self.relative_position_bias_table = nn.Parameter(torch.empty(table, device=device, dtype=dtype))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)
        self._set_stages("proj_drop")
        self.proj_drop = build_layer("dropout", "dropout" if proj_drop_rate else None, proj_drop_rate)
        self.reset_parameters()

    def own_param_roles(self) -> Mapping[str, Role]:
        return {"relative_position_bias_table": Role.EMBEDDING}

    def reset_parameters(self) -> None:
        super().reset_parameters()
        reset_relative_position_table(self)

    def relative_position_bias(self) -> Tensor:
        """The bias each head adds to the logits of a window's pairs of positions, ``[num_heads, L, L]``.

        Example:
            >>> from blockzoo import WindowAttention
            >>> WindowAttention(8, num_heads=2, window_size=3).relative_position_bias().shape
            torch.Size([2, 9, 9])
        """
        return relative_position_bias(self.relative_position_bias_table, self.window_size)

    def _attention_mask(self, height: int, width: int, count: int, shift: tuple[int, int]) -> Tensor:
        """The additive mask of the ``count`` windows of a padded ``height`` x ``width`` map, ``[1, count * heads, L, L]``.

        The bias of each head, plus, in shifted windows, the region mask of each window.
        """
        bias = self.relative_position_bias().unsqueeze(0)  # [1, heads, L, L]
        length = self.window_size**2
        if not any(shift):
            return bias.expand(count, -1, -1, -1).reshape(1, -1, length, length)
        regions = _shift_regions(height, width, self.window_size, shift, bias.device)
        regions = _windows(regions[None, :, :, None], self.window_size)[0, :, :, 0]  # [windows, L]
        apart = regions[:, None, :] != regions[:, :, None]  # [windows, L, L]: pairs from different regions
        mask = torch.zeros(apart.shape, device=bias.device, dtype=bias.dtype).masked_fill_(apart, _MASKED)
        return (bias + mask.unsqueeze(1)).reshape(1, -1, length, length)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        n, height, width, _ = x.shape
        ws = self.window_size
        x = F.pad(x, (0, 0, 0, -width % ws, 0, -height % ws))  # zeros at the bottom and right
        padded_h, padded_w = x.shape[1], x.shape[2]
        # a side that holds one window is not shifted (as in torchvision)
        shift = (self.shift_size if padded_h > ws else 0, self.shift_size if padded_w > ws else 0)
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = _windows(x, ws)  # [N, windows, L, dim]
        count, length = windows.shape[1], windows.shape[2]
        # [N, windows, L, 3 * dim] -> [3, N, windows, heads, L, head_dim]
        qkv = self.qkv(windows).view(n, count, length, 3, self.num_heads, self.head_dim).permute(3, 0, 1, 4, 2, 5)
        # every window's heads side by side, [N, windows * heads, L, head_dim]: the mask is the same for every image
        q, k, v = qkv.reshape(3, n, count * self.num_heads, length, self.head_dim).unbind(0)
        mask = self._attention_mask(padded_h, padded_w, count, shift)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_drop_rate if self.training else 0.0
        )
        # heads back side by side: [N, windows, L, dim]
        out = out.view(n, count, self.num_heads, length, self.head_dim).transpose(2, 3).reshape(n, count, length, -1)
        out = _unwindow(self._run_stages(self.proj(out)), padded_h, padded_w)
        if any(shift):
            out = torch.roll(out, shifts=shift, dims=(1, 2))
        return out[:, :height, :width]

    def extra_repr(self) -> str:
        text = f"{self.dim}, num_heads={self.num_heads}, window_size={self.window_size}"
        if self.shift_size:
            text += f", shift_size={self.shift_size}"
        return text + (f", attn_drop_rate={self.attn_drop_rate}" if self.attn_drop_rate else "")


class SwinBlock(ChannelsLastMapBlock):
    """The Swin Transformer block (v1): ``x + attn(norm(x))`` in (shifted) windows, then ``x + mlp(norm(x))``.

    Like :class:`TransformerBlock`, each half is a residual block with its own
    ``branch`` (norm, then the :class:`WindowAttention` or the :class:`MLP`,
    then an optional :class:`LayerScale`) and ``drop_path``, so
    :func:`~blockzoo.regularization.attach_stochastic_depth` and
    :func:`~blockzoo.zero_init_last_` find both; but it works on maps with the
    channels last, ``[N, H, W, dim]``, as torchvision's
    ``SwinTransformerBlock`` does. A Swin stage alternates ``shift_size=0``
    and ``shift_size=window_size // 2``.

    Args:
        dim: Channels of the map.
        num_heads: Attention heads; must divide ``dim``.
        window_size: Side of the attention windows.
        shift_size: Shift of the windows, in ``[0, window_size)``.
        mlp_ratio: Hidden width of the MLP over ``dim``.
        qkv_bias: Whether the attention's ``qkv`` projection has a bias.
        drop_rate: Dropout after the attention and in the MLP, as torchvision's ``dropout``.
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic-depth probability of each half.
        layer_scale_init: Starting value of a layer scale after each half, or
            ``None`` for none (as in Swin).
        norm_layer: Norm over the last dimension (torch's layer norm by
            default, as in torchvision's Swin); a registered name, a callable or ``None``.
        act_layer: Activation of the MLP.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, H, W, dim]`` (channels last).
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import SwinBlock
        >>> block = SwinBlock(32, num_heads=2, window_size=4, shift_size=2)
        >>> [name for name, _ in block.attention.branch.named_children()]
        ['norm', 'attn', 'layer_scale']
        >>> block.attention.branch.attn
        WindowAttention(
          32, num_heads=2, window_size=4, shift_size=2
          (qkv): Linear(in_features=32, out_features=96, bias=True)
          (proj): Linear(in_features=32, out_features=32, bias=True)
          (proj_drop): Identity()
        )
        >>> block(torch.randn(2, 8, 8, 32)).shape
        torch.Size([2, 8, 8, 32])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
        norm_layer: LayerSpec = "layernorm",
        act_layer: LayerSpec = "gelu",
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        hidden = mlp_hidden_features("dim", dim, mlp_ratio)
        check_probability("drop_rate", drop_rate)
        placement: Placement = {"device": device, "dtype": dtype}
        attn = WindowAttention(
            dim,
            num_heads,
            window_size=window_size,
            shift_size=shift_size,
            qkv_bias=qkv_bias,
            attn_drop_rate=attn_drop_rate,
            proj_drop_rate=drop_rate,
            **placement,
        )
        mlp = MLP(dim, (hidden,), dim, act_layer=act_layer, drop_rate=drop_rate, **placement)
        self.attention, self.feedforward = pre_norm_halves(
            dim,
            attn,
            mlp,
            norm_layer=norm_layer,
            drop_rate=drop_rate,
            layer_scale_init=layer_scale_init,
            drop_path_rate=drop_path_rate,
            **placement,
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.feedforward(self.attention(x))  # type: ignore[no-any-return]


class PatchMerging(ChannelsLastMapBlock):
    """Halve a channels-last map by joining each 2x2 patch's channels, then norm and project them (Swin v1).

    The four positions of each 2x2 patch are concatenated in torchvision's
    order (top-left, bottom-left, top-right, bottom-right) into ``4 * dim``
    channels, normalised (``norm``) and projected without a bias
    (``reduction``) to ``out_dim``. An odd side is padded with zeros first.

    Args:
        dim: Channels of the input.
        out_dim: Channels of the output; ``2 * dim`` by default.
        norm_layer: Norm over the ``4 * dim`` joined channels (torch's layer
            norm by default); a registered name, a callable or ``None``.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, H, W, dim]`` (channels last).
        - Output: ``[N, ceil(H / 2), ceil(W / 2), out_dim]``.

    Example:
        >>> import torch
        >>> from blockzoo import PatchMerging
        >>> merge = PatchMerging(32)
        >>> merge
        PatchMerging(
          32, out_dim=64
          (norm): LayerNorm((128,), eps=1e-05, elementwise_affine=True, bias=True)
          (reduction): Linear(in_features=128, out_features=64, bias=False)
        )
        >>> merge(torch.randn(2, 7, 8, 32)).shape
        torch.Size([2, 4, 4, 64])
    """

    def __init__(
        self,
        dim: int,
        *,
        out_dim: int | None = None,
        norm_layer: LayerSpec = "layernorm",
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.out_dim = check_positive_int("out_dim", out_dim if out_dim is not None else 2 * dim)
        self._set_stages("norm")
        self.norm = build_layer("norm", norm_layer, 4 * dim, spatial_dims=0, device=device, dtype=dtype)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False, device=device, dtype=dtype)
        self.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))  # an odd side gets a row or column of zeros
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        out: Tensor = self.reduction(self._run_stages(x))
        return out

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, h, w, _ = self._check_shape(input_shape)
        return torch.Size((n, (h + 1) // 2, (w + 1) // 2, self.out_dim))

    def extra_repr(self) -> str:
        return f"{self.dim}, out_dim={self.out_dim}"
