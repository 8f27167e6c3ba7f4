"""ShuffleNet v2 (Ma et al. 2018), as torchvision builds it."""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
from torch import nn

from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNormAct, ShuffleUnit
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import register_model

_PAPER = "Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"
_REPEATS = (4, 8, 4)
# width multiplier: output channels of the three stages and of the last 1x1 conv (the paper's table 5)
_WIDTHS = {
    "x0_5": (48, 96, 192, 1024),
    "x1_0": (116, 232, 464, 1024),
    "x1_5": (176, 352, 704, 1024),
    "x2_0": (244, 488, 976, 2048),
}


def shufflenet_v2(
    width: str,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """ShuffleNet v2: a 24-wide stride-2 stem and max pooling, three stages of shuffle units, a 1x1 conv."""
    placement: Placement = {"device": device, "dtype": dtype}
    *stage_widths, last = _WIDTHS[width]
    stem = nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(in_channels, 24, 3, stride=2, **placement),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        )
    )
    layers: list[tuple[str, nn.Module]] = [("stem", stem)]
    c_in = 24
    for s, (c_out, repeats) in enumerate(zip(stage_widths, _REPEATS, strict=True)):
        units = [
            ShuffleUnit(c_in if i == 0 else c_out, c_out, stride=2 if i == 0 else 1, **placement)
            for i in range(repeats)
        ]
        layers.append((f"stage{s + 1}", nn.Sequential(*units)))
        c_in = c_out
    layers.append(("last", ConvNormAct(c_in, last, 1, **placement)))
    return ZooModel(nn.Sequential(OrderedDict(layers)), ClassifierHead(last, num_classes, **placement))


for _width in _WIDTHS:
    register_model(f"shufflenet_v2_{_width}", family="shufflenet_v2", paper=_PAPER)(
        functools.partial(shufflenet_v2, _width)
    )
