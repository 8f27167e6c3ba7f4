"""Swin Transformers (Liu et al. 2021), v1, as torchvision builds them."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from blockzoo._checks import check_bool, check_positive_int
from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, PatchEmbed, PatchMerging, SwinBlock
from blockzoo.init import zero_init_last_
from blockzoo.layers import LayerSpec, Placement, build_layer
from blockzoo.models._base import ZooModel, drop_path_rates
from blockzoo.models._registry import register_model
from blockzoo.shapes import infer_shape

__all__ = ["SwinTransformer", "swin_transformer"]

_PAPER = "Liu et al. 2021, Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"

#: Width of the first stage, depths and heads of the four stages, and torchvision's ``stochastic_depth_prob``.
_CONFIGS: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], float]] = {
    "swin_t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 0.2),
    "swin_s": (96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3),
    "swin_b": (128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5),
}


class _PatchGrid(PatchEmbed):
    """Swin's stem: :class:`~blockzoo.PatchEmbed`'s patches, kept as a channels-last grid ``[N, h, w, embed_dim]`` and normalised.

    Private: its output is channels last by layout, which the block
    contract's channels_last law (for channels-first blocks) does not describe.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        *,
        patch_size: int,
        norm_layer: LayerSpec,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_channels, embed_dim, patch_size=patch_size, device=device, dtype=dtype)
        self.norm = build_layer("norm", norm_layer, embed_dim, spatial_dims=0, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if x.shape[2] < self.patch_size or x.shape[3] < self.patch_size:
            raise self._too_small(x.shape)
        out: Tensor = self.norm(self.proj(x).permute(0, 2, 3, 1))  # [N, embed_dim, h, w] -> [N, h, w, embed_dim]
        return out

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, _, dim = super().output_shape(input_shape)
        return torch.Size((n, input_shape[2] // self.patch_size, input_shape[3] // self.patch_size, dim))


class SwinTransformer(ZooModel):
    """A Swin Transformer: 4x4 patches, four stages of :class:`~blockzoo.SwinBlock` with :class:`~blockzoo.PatchMerging` between them.

    The features work on channels-last maps: ``forward_features`` returns the
    normalised map ``[N, H / 32, W / 32, C]`` (as torchvision's ``features``
    and ``norm``), and ``forward_head`` pools it. ``features`` holds
    ``patch_embed``, ``stage1``, ``down2``, ``stage2``, ``down3``, ``stage3``,
    ``down4``, ``stage4`` and ``norm`` (torchvision's ``features[0]`` to
    ``features[7]``, then its ``norm``). Any image size works: each block pads
    its map to whole windows.

    Example:
        >>> import torch, blockzoo
        >>> model = blockzoo.create_model("swin_t", num_classes=10)
        >>> model.features.down2
        PatchMerging(
          96, out_dim=192
          (norm): LayerNorm((384,), eps=1e-05, elementwise_affine=True, bias=True)
          (reduction): Linear(in_features=384, out_features=192, bias=False)
        )
        >>> features = model.forward_features(torch.randn(1, 3, 64, 64))
        >>> features.shape, model.forward_head(features).shape
        (torch.Size([1, 2, 2, 768]), torch.Size([1, 10]))
    """

    def torchvision_unused_keys(self, keys: Sequence[str]) -> list[str]:
        """The keys of a torchvision state_dict that hold no learned state: each attention's relative position index.

        :class:`~blockzoo.WindowAttention` computes it; the conversion from torchvision leaves those keys out.
        """
        return [key for key in keys if key.endswith(".relative_position_index")]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """The head on a channels-last map ``[N, H, W, C]``; ``pre_logits=True`` stops before the classifier."""
        return super().forward_head(x.permute(0, 3, 1, 2), pre_logits)

    def output_shape(self, input_shape: Sequence[int]) -> torch.Size:
        n, h, w, c = infer_shape(self.features, input_shape)
        return infer_shape(self.head, (n, c, h, w))

    def param_depths(self) -> dict[str, int]:
        """The stage of each parameter (the patch embedding 0, a merging layer the stage it feeds, the final norm and the head 5)."""
        depth = {"patch_embed": 0, "norm": 5}
        for s in range(1, 5):
            depth[f"stage{s}"] = depth[f"down{s}"] = s
        return {
            name: depth[name.split(".")[1]] if name.startswith("features.") else 5
            for name, _ in self.named_parameters()
        }

    def torchvision_key_order(self) -> list[str]:
        """The state_dict keys in the order of torchvision's: each merging layer's reduction before its norm."""
        keys = list(self.state_dict())
        reductions = {k for k in keys if k.endswith(".reduction.weight")}
        order = []
        for key in keys:
            if key in reductions:
                continue
            if key.endswith(".norm.weight") and key.removesuffix("norm.weight") + "reduction.weight" in reductions:
                order.append(key.removesuffix("norm.weight") + "reduction.weight")
            order.append(key)
        return order


def swin_transformer(
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    window_size: int = 7,
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.2,
    zero_init_last: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> SwinTransformer:
    """A Swin Transformer (v1) in torchvision's layout (``dropout`` is ``drop_rate``, ``attention_dropout`` is ``attn_drop_rate``).

    Stage ``s`` is ``embed_dim * 2**s`` wide, its blocks alternate unshifted
    and shifted windows (by ``window_size // 2``), and a patch merging layer
    halves the map before each stage after the first. ``drop_path_rate``
    rises linearly over the blocks, from 0 for the first to
    ``drop_path_rate`` for the last (torchvision's ``stochastic_depth_prob``),
    and both halves of a block get its rate, as in torchvision.
    ``zero_init_last=True`` zeroes the last linear layer of every half, so
    each block starts as the identity. The parameters start from blockzoo's
    initialisation (the activation-aware table of every block; the relative
    position bias a truncated normal of std 0.02 as in torchvision), not
    torchvision's truncated normal of std 0.02 for every linear layer;
    torchvision's weights load as they are.
    """
    check_positive_int("embed_dim", embed_dim)
    placement: Placement = {"device": device, "dtype": dtype}
    norm = "layernorm"  # torch's, eps 1e-5, as torchvision's Swin
    layers: list[tuple[str, nn.Module]] = [
        ("patch_embed", _PatchGrid(in_channels, embed_dim, patch_size=4, norm_layer=norm, **placement))
    ]
    rates = drop_path_rates(drop_path_rate, sum(depths))
    index = 0
    for s, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
        dim = embed_dim * 2**s
        if s > 0:
            layers.append((f"down{s + 1}", PatchMerging(dim // 2, norm_layer=norm, **placement)))
        blocks = [
            SwinBlock(
                dim,
                heads,
                window_size=window_size,
                shift_size=0 if b % 2 == 0 else window_size // 2,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=rates[index + b],
                norm_layer=norm,
                **placement,
            )
            for b in range(depth)
        ]
        layers.append((f"stage{s + 1}", nn.Sequential(*blocks)))
        index += depth
    width = embed_dim * 2 ** (len(depths) - 1)
    layers.append(("norm", build_layer("norm", norm, width, spatial_dims=0, **placement)))
    model = SwinTransformer(nn.Sequential(OrderedDict(layers)), ClassifierHead(width, num_classes, **placement))
    if check_bool("zero_init_last", zero_init_last):
        zero_init_last_(model)
    return model


for _name, (_dim, _depths, _heads, _rate) in _CONFIGS.items():
    register_model(_name, family="swin", paper=_PAPER)(
        functools.partial(swin_transformer, _dim, _depths, _heads, drop_path_rate=_rate)
    )
