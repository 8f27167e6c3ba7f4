"""VGG (Simonyan and Zisserman 2015) and MobileNet v2 (Sandler et al. 2018), as torchvision builds them."""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
from torch import nn

from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNormAct, InvertedResidual
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel, drop_path_rates
from blockzoo.models._registry import register_model

_VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
_VGG_PAPER = "Simonyan and Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition"


def vgg(
    config: str,
    *,
    batch_norm: bool = False,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.5,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """VGG: 3x3 conv stages and max pooling, a 7x7 average pool, and two 4096-wide hidden layers."""
    placement: Placement = {"device": device, "dtype": dtype}
    layers: list[nn.Module] = []
    c_in = in_channels
    for v in _VGG_CONFIGS[config]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            # torchvision's VGG keeps the conv bias even before a batch norm
            layers.append(
                ConvNormAct(c_in, int(v), 3, bias=True, norm_layer="batchnorm" if batch_norm else None, **placement)
            )
            c_in = int(v)
    layers.append(nn.AdaptiveAvgPool2d(7))
    head = ClassifierHead(
        512 * 7 * 7,
        num_classes,
        pool_layer=None,
        hidden_features=(4096, 4096),
        drop_rate=drop_rate,
        **placement,
    )
    return ZooModel(nn.Sequential(*layers), head)


for _config in _VGG_CONFIGS:
    register_model(_config, family="vgg", paper=_VGG_PAPER)(functools.partial(vgg, _config, batch_norm=False))
    register_model(f"{_config}_bn", family="vgg", paper=_VGG_PAPER)(functools.partial(vgg, _config, batch_norm=True))


# expansion t, channels c, repeats n, first stride s (Sandler et al. 2018, table 2)
_MOBILENET_V2 = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


@register_model(
    "mobilenet_v2",
    family="mobilenet",
    paper="Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks",
)
def mobilenet_v2(
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.2,
    drop_path_rate: float = 0.0,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """MobileNet v2 at width 1.0: a stride-2 stem, 17 inverted residual blocks and a 1280-wide 1x1 conv."""
    placement: Placement = {"device": device, "dtype": dtype}
    layers: list[tuple[str, nn.Module]] = [
        ("stem", ConvNormAct(in_channels, 32, 3, stride=2, act_layer="relu6", **placement))
    ]
    total = sum(n for _, _, n, _ in _MOBILENET_V2)
    rates = drop_path_rates(drop_path_rate, total)
    c_in, index = 32, 0
    for stage, (t, c, n, s) in enumerate(_MOBILENET_V2):
        blocks = []
        for i in range(n):
            blocks.append(
                InvertedResidual(
                    c_in, c, stride=s if i == 0 else 1, expand_ratio=t, drop_path_rate=rates[index], **placement
                )
            )
            c_in, index = c, index + 1
        layers.append((f"stage{stage + 1}", nn.Sequential(*blocks)))
    layers.append(("last", ConvNormAct(c_in, 1280, 1, act_layer="relu6", **placement)))
    head = ClassifierHead(1280, num_classes, drop_rate=drop_rate, **placement)
    return ZooModel(nn.Sequential(OrderedDict(layers)), head)
