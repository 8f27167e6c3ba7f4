"""RegNetX and RegNetY (Radosavovic et al. 2020), as torchvision builds them."""

from __future__ import annotations

import functools
import math
from collections import OrderedDict

import torch
from torch import nn

from blockzoo._types import DeviceLike
from blockzoo.blocks import Bottleneck, ClassifierHead, ConvNormAct
from blockzoo.init import zero_init_last_
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel, drop_path_rates
from blockzoo.models._registry import register_model
from blockzoo.models._rounding import round_channels

_PAPER = "Radosavovic et al. 2020, Designing Network Design Spaces"
_QUANTUM = 8  # stage widths are multiples of 8


def regnet_stages(depth: int, w_0: int, w_a: float, w_m: float, group_width: int) -> list[tuple[int, int, int]]:
    """``(width, blocks, group width)`` of each stage of the RegNet that the paper's parameters describe.

    Block ``j`` would have the width ``w_0 + w_a * j`` (a line); it is snapped
    to the nearest power of ``w_m`` times ``w_0`` (quantised to multiples of
    8), and consecutive blocks of the same width form a stage. Each stage's
    group width is then capped at its width, and the width made divisible by
    it (the bottleneck ratio is 1 in torchvision's RegNets).

    Example:
        >>> from blockzoo.models._regnet import regnet_stages
        >>> regnet_stages(16, 48, 27.89, 2.09, 8)
        [(48, 1, 8), (104, 3, 8), (208, 6, 8), (440, 6, 8)]
    """
    widths = []
    for j in range(depth):
        exponent = round(math.log((w_0 + w_a * j) / w_0) / math.log(w_m))
        widths.append(round(w_0 * w_m**exponent / _QUANTUM) * _QUANTUM)
    stages: list[list[int]] = []
    for width in widths:
        if stages and stages[-1][0] == width:
            stages[-1][1] += 1
        else:
            stages.append([width, 1])
    out = []
    for width, blocks in stages:
        groups_width = min(group_width, width)
        out.append((round_channels(width, groups_width), blocks, groups_width))
    return out


class RegNet(ZooModel):
    """A :class:`ZooModel` whose shortcuts torchvision registers before the residual branch.

    blockzoo's residual blocks register the branch first; the conversion from
    torchvision's state_dict (:func:`~blockzoo.models.torchvision_to_blockzoo`)
    pairs tensors in order, so torchvision's order is adapted first.
    """

    def torchvision_key_order(self) -> list[str]:
        """The state_dict keys in the order of torchvision's: each block's shortcut before its branch, as torchvision registers it."""
        keys = list(self.state_dict())
        shortcuts: dict[str, list[str]] = {}
        for key in keys:
            block, sep, _ = key.partition(".shortcut.")
            if sep:
                shortcuts.setdefault(block, []).append(key)
        order: list[str] = []
        for key in keys:
            block, sep, _ = key.partition(".branch.")
            if sep and block in shortcuts:
                order += shortcuts.pop(block)
            if ".shortcut." not in key:
                order.append(key)
        return order


# name: (depth, w_0, w_a, w_m, group width, squeeze-excite ratio); the paper's table of RegNetX and RegNetY
_CONFIGS: dict[str, tuple[int, int, float, float, int, float | None]] = {
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16, None),
    "regnet_x_800mf": (16, 56, 35.73, 2.28, 16, None),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24, None),
    "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48, None),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120, None),
    "regnet_x_16gf": (22, 216, 55.59, 2.1, 128, None),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168, None),
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8, 0.25),
    "regnet_y_800mf": (14, 56, 38.84, 2.4, 16, 0.25),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24, 0.25),
    "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24, 0.25),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56, 0.25),
    "regnet_y_16gf": (18, 200, 106.23, 2.48, 112, 0.25),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232, 0.25),
    "regnet_y_128gf": (27, 456, 160.83, 2.52, 264, 0.25),
}


def regnet(
    depth: int,
    w_0: int,
    w_a: float,
    w_m: float,
    group_width: int,
    se_ratio: float | None,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_path_rate: float = 0.0,
    zero_init_last: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> RegNet:
    """A RegNet: a 32-wide stride-2 stem, four stages of grouped bottleneck blocks (with SE for RegNetY), a linear head.

    Every stage starts with a stride-2 block; the blocks are
    :class:`~blockzoo.Bottleneck` at bottleneck ratio 1, with squeeze-excite
    after the grouped 3x3 conv in RegNetY. ``drop_path_rate`` rises linearly
    over all the blocks, the first block of each stage (whose shortcut is a
    projection) included, as timm's RegNets do (torchvision's have none; 0 by
    default); :func:`~blockzoo.regularization.attach_stochastic_depth` leaves
    projection blocks alone and ramps over the others.
    """
    placement: Placement = {"device": device, "dtype": dtype}
    stages: list[tuple[str, nn.Module]] = [("stem", ConvNormAct(in_channels, 32, 3, stride=2, **placement))]
    plan = regnet_stages(depth, w_0, w_a, w_m, group_width)
    rates = drop_path_rates(drop_path_rate, sum(blocks for _, blocks, _ in plan))
    c_in, index = 32, 0
    for s, (width, count, groups_width) in enumerate(plan):
        blocks = []
        for b in range(count):
            blocks.append(
                Bottleneck(
                    c_in,
                    width,
                    mid_channels=width,
                    stride=2 if b == 0 else 1,
                    groups=width // groups_width,
                    se_ratio=se_ratio,
                    drop_path_rate=rates[index],
                    **placement,
                )
            )
            c_in, index = width, index + 1
        stages.append((f"stage{s + 1}", nn.Sequential(*blocks)))
    model = RegNet(nn.Sequential(OrderedDict(stages)), ClassifierHead(c_in, num_classes, **placement))
    if zero_init_last:
        zero_init_last_(model)
    return model


for _name, _config in _CONFIGS.items():
    _family = "regnet_y" if _config[-1] is not None else "regnet_x"
    register_model(_name, family=_family, paper=_PAPER)(functools.partial(regnet, *_config))
