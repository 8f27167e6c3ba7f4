"""Vision transformers (Dosovitskiy et al. 2021), as torchvision builds them."""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
from torch import nn

from blockzoo._checks import check_bool, check_positive_int
from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ClassToken, PatchEmbed, PositionEmbedding, TransformerBlock
from blockzoo.blocks._convnext import LAYER_NORM_EPS6
from blockzoo.init import zero_init_last_
from blockzoo.layers import Placement, build_layer
from blockzoo.models._base import drop_path_rates
from blockzoo.models._classes import VisionTransformer
from blockzoo.models._registry import register_model

_PAPER = "Dosovitskiy et al. 2021, An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale"

#: patch size, depth, heads, width, MLP width (torchvision's vit_*).
_CONFIGS: dict[str, tuple[int, int, int, int, int]] = {
    "vit_b_16": (16, 12, 12, 768, 3072),
    "vit_b_32": (32, 12, 12, 768, 3072),
    "vit_l_16": (16, 24, 16, 1024, 4096),
    "vit_l_32": (32, 24, 16, 1024, 4096),
    "vit_h_14": (14, 32, 16, 1280, 5120),
}


def vision_transformer(
    patch_size: int,
    depth: int,
    num_heads: int,
    dim: int,
    mlp_dim: int,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    image_size: int = 224,
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    zero_init_last: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> VisionTransformer:
    """A ViT in torchvision's layout (``dropout`` is ``drop_rate``, ``attention_dropout`` is ``attn_drop_rate``).

    ``image_size`` must be a multiple of ``patch_size``. ``drop_path_rate``
    (torchvision's ViTs have none; 0 by default) rises linearly over the
    transformer blocks, and both halves of a block (attention and MLP) get
    that block's rate, as in timm; :func:`~blockzoo.regularization.attach_stochastic_depth`
    instead ramps over the halves, each a residual block of its own.
    ``zero_init_last=True`` zeroes the last linear layer of every half, so
    each block starts as the identity. The parameters start from blockzoo's
    initialisation (the activation-aware table of every block; the position
    embedding normal with std 0.02 as in torchvision), not torchvision's
    (which also starts the head at zero); torchvision's weights load as they
    are.
    """
    if check_positive_int("image_size", image_size) < patch_size or image_size % patch_size:
        raise ValueError(
            f"image_size must be a multiple of the patch size ({patch_size}): the position embedding is made for a "
            f"whole grid of patches. Received: image_size={image_size}"
        )
    placement: Placement = {"device": device, "dtype": dtype}
    grid = image_size // patch_size
    rates = drop_path_rates(drop_path_rate, depth)
    blocks = [
        TransformerBlock(
            dim,
            num_heads,
            mlp_ratio=mlp_dim / dim,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=rates[i],
            **placement,
        )
        for i in range(depth)
    ]
    features = OrderedDict(
        patch_embed=PatchEmbed(in_channels, dim, patch_size=patch_size, **placement),
        class_token=ClassToken(dim, **placement),
        pos_embed=PositionEmbedding(1 + grid * grid, dim, num_prefix_tokens=1, **placement),
        pos_drop=build_layer("dropout", "dropout" if drop_rate else None, drop_rate),
        blocks=nn.Sequential(*blocks),
        norm=LAYER_NORM_EPS6(dim, **placement),
    )
    head = ClassifierHead(dim, num_classes, pool_layer=None, **placement)
    model = VisionTransformer(nn.Sequential(features), head)
    if check_bool("zero_init_last", zero_init_last):
        zero_init_last_(model)
    return model


for _name, (_patch, _depth, _heads, _dim, _mlp) in _CONFIGS.items():
    register_model(_name, family="vit", paper=_PAPER)(
        functools.partial(vision_transformer, _patch, _depth, _heads, _dim, _mlp)
    )
