"""Self-attention and the pre-norm transformer encoder block (Vaswani et al. 2017; Dosovitskiy et al. 2021)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blockzoo._checks import check_positive_int, check_probability
from blockzoo._types import DeviceLike
from blockzoo.blocks._base import TokenBlock
from blockzoo.blocks._convnext import LAYER_NORM_EPS6, LayerScale
from blockzoo.blocks._mlp import MLP, mlp_hidden_features
from blockzoo.blocks._residual import ResidualBlock
from blockzoo.init._records import set_record
from blockzoo.layers import LayerSpec, Placement, build_layer
from blockzoo.roles import Role

__all__ = ["MultiHeadSelfAttention", "TransformerBlock", "pre_norm_halves", "relative_position_index"]


def relative_position_index(size: int, device: DeviceLike = None) -> Tensor:
    """For a ``size x size`` window (Swin's and MaxViT's relative position bias), the row of the bias table of each pair of positions, ``[size**2, size**2]``.

    The pair (``i``, ``j``) of tokens at (``yi``, ``xi``) and (``yj``, ``xj``) reads row
    ``(yi - yj + size - 1) * (2 * size - 1) + (xi - xj + size - 1)`` of a table with one row per offset.

    Example:
        >>> from blockzoo.blocks._attention import relative_position_index
        >>> relative_position_index(2)
        tensor([[4, 3, 1, 0],
                [5, 4, 2, 1],
                [7, 6, 4, 3],
                [8, 7, 5, 4]])
    """
    steps = torch.arange(size, device=device)
    coords = torch.stack(torch.meshgrid(steps, steps, indexing="ij")).flatten(1)
    offsets = coords[:, :, None] - coords[:, None, :] + (size - 1)  # [2, L, L], each in [0, 2 * size - 2]
    return offsets[0] * (2 * size - 1) + offsets[1]


def relative_position_bias(table: Tensor, size: int) -> Tensor:
    """Each head's bias for the pairs of positions of a ``size x size`` window, ``[heads, size**2, size**2]``.

    ``table`` is ``[(2 * size - 1) ** 2, heads]``, one row per offset. The index is made here, not kept in a
    buffer as torchvision does: a model built on the meta device and materialised with ``to_empty()`` would lose
    it. Compiled and exported programs hold it as a constant.
    """
    return table[relative_position_index(size, table.device)].permute(2, 0, 1)


def reset_relative_position_table(module: nn.Module) -> None:
    """Draw ``module.relative_position_bias_table`` as torchvision and the papers do, and record it."""
    nn.init.trunc_normal_(module.get_parameter("relative_position_bias_table"), std=0.02)
    set_record(module, "relative_position_bias_table", "trunc_normal(std=0.02)", 0.02)


class MultiHeadSelfAttention(TokenBlock):
    """Multi-head self-attention computed by :func:`torch.nn.functional.scaled_dot_product_attention`.

    One linear layer ``qkv`` projects the tokens to queries, keys and values
    (laid out as ``nn.MultiheadAttention``'s ``in_proj_weight``: the rows of
    the queries, then the keys, then the values), the fused attention kernel
    that torch picks for the device runs, and ``proj`` maps the heads back.
    With the same weights it equals ``nn.MultiheadAttention(dim, num_heads,
    batch_first=True)`` called as ``attn(x, x, x)``.

    Args:
        dim: Width of each token.
        num_heads: Attention heads; must divide ``dim``.
        qkv_bias: Whether ``qkv`` has a bias.
        attn_drop_rate: Dropout on the attention weights, in training.
        proj_drop_rate: Dropout after ``proj``, in training.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, L, dim]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import MultiHeadSelfAttention
        >>> attn = MultiHeadSelfAttention(64, num_heads=4)
        >>> attn
        MultiHeadSelfAttention(
          64, num_heads=4
          (qkv): Linear(in_features=64, out_features=192, bias=True)
          (proj): Linear(in_features=64, out_features=64, bias=True)
          (proj_drop): Identity()
        )
        >>> attn(torch.randn(2, 10, 64)).shape
        torch.Size([2, 10, 64])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
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
        self.attn_drop_rate = check_probability("attn_drop_rate", attn_drop_rate)
        check_probability("proj_drop_rate", proj_drop_rate)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)
        self._set_stages("proj_drop")
        self.proj_drop = build_layer("dropout", "dropout" if proj_drop_rate else None, proj_drop_rate)
        self.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        n, length, _ = x.shape
        # [N, L, 3 * dim] -> [3, N, heads, L, head_dim]
        qkv = self.qkv(x).view(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop_rate if self.training else 0.0)
        out = self.proj(out.transpose(1, 2).reshape(n, length, self.dim))  # heads back side by side
        return self._run_stages(out)

    def extra_repr(self) -> str:
        return f"{self.dim}, num_heads={self.num_heads}" + (
            f", attn_drop_rate={self.attn_drop_rate}" if self.attn_drop_rate else ""
        )


class _PreNormResidual(ResidualBlock):
    """``x + drop_path(branch(x))`` on tokens, where the branch is norm -> layer -> layer scale."""

    _add_in_place = True  # the branch ends in a linear layer or a layer scale: always a new tensor
    #: zero_init_last_ zeroes the layer scale or, without one, the last linear layer (not the norm before them).
    zero_init_roles = (Role.SCALE, Role.WEIGHT)


def _pre_norm_half(
    dim: int, name: str, layer: nn.Module, drop: nn.Module | None, layer_scale_init: float | None, **kw: Any
) -> ResidualBlock:
    placement: Placement = {"device": kw["device"], "dtype": kw["dtype"]}
    parts: OrderedDict[str, nn.Module] = OrderedDict(
        norm=build_layer("norm", kw["norm_layer"], dim, spatial_dims=0, **placement)
    )
    parts[name] = layer
    if drop is not None:
        parts["drop"] = drop
    parts["layer_scale"] = (
        nn.Identity() if layer_scale_init is None else LayerScale(dim, init_value=layer_scale_init, **placement)
    )
    return _PreNormResidual(nn.Sequential(parts), drop_path_rate=kw["drop_path_rate"])


def pre_norm_halves(
    dim: int,
    attn: nn.Module,
    mlp: nn.Module,
    *,
    norm_layer: LayerSpec,
    drop_rate: float,
    layer_scale_init: float | None,
    drop_path_rate: float,
    device: DeviceLike,
    dtype: torch.dtype | None,
) -> tuple[ResidualBlock, ResidualBlock]:
    """The two halves of a pre-norm transformer block: ``x + attn(norm(x))`` and ``x + mlp(norm(x))``.

    Each is a residual block whose branch has the children ``norm``, then
    ``attn`` or ``mlp`` and (the MLP's half only, as torchvision's MLP drops
    its output) ``drop``, then ``layer_scale`` (a :class:`LayerScale`, or
    ``nn.Identity`` with ``layer_scale_init=None``); both get
    ``drop_path_rate``. The norms and layer scales act on the last dimension,
    so the halves take tokens ``[N, L, dim]`` and channels-last maps
    ``[N, H, W, dim]`` alike.
    """
    kw = {"norm_layer": norm_layer, "drop_path_rate": drop_path_rate, "device": device, "dtype": dtype}
    drop = build_layer("dropout", "dropout" if drop_rate else None, drop_rate)
    return (
        _pre_norm_half(dim, "attn", attn, None, layer_scale_init, **kw),
        _pre_norm_half(dim, "mlp", mlp, drop, layer_scale_init, **kw),
    )


class TransformerBlock(TokenBlock):
    """The pre-norm transformer encoder block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``.

    Each half is a residual block (:class:`ResidualBlock`) with its own
    ``branch`` (norm, then the attention or the MLP, then an optional
    :class:`LayerScale`) and ``drop_path``, so :func:`~blockzoo.regularization.attach_stochastic_depth`
    and :func:`~blockzoo.zero_init_last_` find both. This is the encoder
    block of the vision transformers (torchvision's ``EncoderBlock``).

    Args:
        dim: Width of each token.
        num_heads: Attention heads; must divide ``dim``.
        mlp_ratio: Hidden width of the MLP over ``dim``.
        qkv_bias: Whether the attention's ``qkv`` projection has a bias.
        drop_rate: Dropout after the attention and in the MLP (after its
            activation and its output), as torchvision's ``dropout``.
        attn_drop_rate: Dropout on the attention weights.
        drop_path_rate: Stochastic-depth probability of each half.
        layer_scale_init: Starting value of a layer scale after each half, or
            ``None`` for none (as in the original ViT).
        norm_layer: Norm over the last dimension: torch's layer norm with eps
            1e-6 by default; a registered name, a callable or ``None``.
        act_layer: Activation of the MLP.
        device: Where the parameters are created.
        dtype: The parameters' dtype.

    Shape:
        - Input: ``[N, L, dim]``.
        - Output: the same.

    Example:
        >>> import torch
        >>> from blockzoo import TransformerBlock
        >>> block = TransformerBlock(64, num_heads=4)
        >>> [name for name, _ in block.attention.branch.named_children()]
        ['norm', 'attn', 'layer_scale']
        >>> block.feedforward.branch.mlp.layers[0].fc
        Linear(in_features=64, out_features=256, bias=True)
        >>> block(torch.randn(2, 10, 64)).shape
        torch.Size([2, 10, 64])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
        norm_layer: LayerSpec = LAYER_NORM_EPS6,
        act_layer: LayerSpec = "gelu",
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        hidden = mlp_hidden_features("dim", dim, mlp_ratio)
        check_probability("drop_rate", drop_rate)
        placement: Placement = {"device": device, "dtype": dtype}
        attn = MultiHeadSelfAttention(
            dim, num_heads, qkv_bias=qkv_bias, attn_drop_rate=attn_drop_rate, proj_drop_rate=drop_rate, **placement
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
