"""MNASNet (Tan et al. 2019), the B1 variant as torchvision builds it."""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
from torch import nn

from blockzoo._checks import check_probability
from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNormAct, DepthwiseSeparableConv, InvertedResidual
from blockzoo.blocks._drop import drop_path_rates
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import register_model
from blockzoo.models._rounding import round_channels

_PAPER = "Tan et al. 2019, MnasNet: Platform-Aware Neural Architecture Search for Mobile"
# The paper's TensorFlow batch-norm decay of 0.9997 is a torch momentum of 1 - 0.9997.
_NORM = functools.partial(nn.BatchNorm2d, momentum=1 - 0.9997)
_WIDTHS = (32, 16, 24, 40, 80, 96, 192, 320)
# kernel, first stride, expansion, repeats of the six inverted-residual stages (after the first two widths)
_STAGES = ((3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1))


def mnasnet(
    alpha: float,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.2,
    drop_path_rate: float = 0.0,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """MNASNet-B1 at width ``alpha``: a conv and a separable conv, six inverted-residual stages, a 1280-wide 1x1 conv."""
    placement: Placement = {"device": device, "dtype": dtype}
    common = {"norm_layer": _NORM, **placement}
    widths = [round_channels(w * alpha) for w in _WIDTHS]
    stem = nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(in_channels, widths[0], 3, stride=2, **common),  # type: ignore[arg-type]
            separable=DepthwiseSeparableConv(widths[0], widths[1], pw_act_layer=None, **common),  # type: ignore[arg-type]
        )
    )
    layers: list[tuple[str, nn.Module]] = [("stem", stem)]
    rates = drop_path_rates(check_probability("drop_path_rate", drop_path_rate), sum(s[3] for s in _STAGES))
    c_in, index = widths[1], 0
    for number, ((kernel, stride, expand, repeats), width) in enumerate(zip(_STAGES, widths[2:], strict=True), 1):
        blocks: list[nn.Module] = []
        for i in range(repeats):
            blocks.append(
                InvertedResidual(
                    c_in,
                    width,
                    kernel,
                    stride=stride if i == 0 else 1,
                    expand_ratio=expand,
                    act_layer="relu",
                    drop_path_rate=rates[index],
                    **common,  # type: ignore[arg-type]
                )
            )
            c_in, index = width, index + 1
        layers.append((f"stage{number}", nn.Sequential(*blocks)))
    layers.append(("last", ConvNormAct(c_in, 1280, 1, **common)))  # type: ignore[arg-type]
    head = ClassifierHead(1280, num_classes, drop_rate=drop_rate, **placement)
    return ZooModel(nn.Sequential(OrderedDict(layers)), head)


for _alpha, _suffix in ((0.5, "0_5"), (0.75, "0_75"), (1.0, "1_0"), (1.3, "1_3")):
    register_model(f"mnasnet{_suffix}", family="mnasnet", paper=_PAPER)(functools.partial(mnasnet, _alpha))
