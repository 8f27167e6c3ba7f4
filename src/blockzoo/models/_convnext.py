"""ConvNeXt (Liu et al. 2022), as torchvision builds it."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from blockzoo._checks import check_bool
from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNeXtBlock, ConvNormAct, LayerNorm2d
from blockzoo.blocks._convnext import LAYER_NORM_EPS6
from blockzoo.init import zero_init_last_
from blockzoo.layers import Placement
from blockzoo.models._base import drop_path_rates
from blockzoo.models._classes import ConvNeXt
from blockzoo.models._registry import register_model

_PAPER = "Liu et al. 2022, A ConvNet for the 2020s"
_NORM = functools.partial(LayerNorm2d, eps=1e-6)

#: Widths and depths of the four stages, and torchvision's ``stochastic_depth_prob``.
_CONFIGS: dict[str, tuple[tuple[int, ...], tuple[int, ...], float]] = {
    "convnext_tiny": ((96, 192, 384, 768), (3, 3, 9, 3), 0.1),
    "convnext_small": ((96, 192, 384, 768), (3, 3, 27, 3), 0.4),
    "convnext_base": ((128, 256, 512, 1024), (3, 3, 27, 3), 0.5),
    "convnext_large": ((192, 384, 768, 1536), (3, 3, 27, 3), 0.5),
}


def convnext(
    widths: Sequence[int],
    depths: Sequence[int],
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_path_rate: float = 0.1,
    layer_scale_init: float | None = 1e-6,
    zero_init_last: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ConvNeXt:
    """A ConvNeXt of the given stage widths and depths (torchvision's layout and defaults).

    ``drop_path_rate`` rises linearly over the blocks, from 0 for the first to
    ``drop_path_rate`` for the last (torchvision's ``stochastic_depth_prob``).
    ``zero_init_last=True`` zeroes every block's layer scale, so each starts
    as the identity. The parameters start from blockzoo's initialisation (the
    activation-aware table of every block), not torchvision's truncated
    normal of std 0.02; torchvision's weights load as they are.
    """
    placement: Placement = {"device": device, "dtype": dtype}
    common = {"norm_layer": _NORM, "act_layer": None, "bias": True, **placement}
    stages: list[tuple[str, nn.Module]] = [
        ("stem", ConvNormAct(in_channels, widths[0], 4, stride=4, padding=0, **common))  # type: ignore[arg-type]
    ]
    rates = drop_path_rates(drop_path_rate, sum(depths))
    index = 0
    for s, (width, depth) in enumerate(zip(widths, depths, strict=True)):
        if s > 0:
            down = ConvNormAct(widths[s - 1], width, 2, stride=2, order="norm-act-conv", **common)  # type: ignore[arg-type]
            stages.append((f"down{s + 1}", down))
        blocks = [
            ConvNeXtBlock(width, layer_scale_init=layer_scale_init, drop_path_rate=rates[index + b], **placement)
            for b in range(depth)
        ]
        stages.append((f"stage{s + 1}", nn.Sequential(*blocks)))
        index += depth
    head = ClassifierHead(widths[-1], num_classes, norm_layer=LAYER_NORM_EPS6, **placement)
    model = ConvNeXt(nn.Sequential(OrderedDict(stages)), head)
    if check_bool("zero_init_last", zero_init_last):
        zero_init_last_(model)
    return model


for _name, (_widths, _depths, _rate) in _CONFIGS.items():
    register_model(_name, family="convnext", paper=_PAPER)(
        functools.partial(convnext, _widths, _depths, drop_path_rate=_rate)
    )
