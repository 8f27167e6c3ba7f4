"""ResNets: the CIFAR family of He et al. 2016 (section 4.2) and torchvision's ImageNet family."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from blockzoo._checks import is_int
from blockzoo._types import DeviceLike
from blockzoo.blocks import BasicBlock, Bottleneck, ClassifierHead, ConvNormAct
from blockzoo.init import zero_init_last_
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel, drop_path_rates
from blockzoo.models._registry import register_model

_HE = "He et al. 2016, Deep Residual Learning for Image Recognition"


def _stage(blocks: Sequence[nn.Module]) -> nn.Sequential:
    return nn.Sequential(*blocks)


def cifar_resnet(
    depth: int,
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    drop_path_rate: float = 0.0,
    zero_init_last: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """A CIFAR ResNet of depth ``6n + 2``: 3x3 convs, 16/32/64 filters, option A (padding) shortcuts."""
    if not is_int(depth) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"depth must be an int 6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...). Received: depth={depth!r}"
        )
    n = (depth - 2) // 6
    placement: Placement = {"device": device, "dtype": dtype}
    rates = drop_path_rates(drop_path_rate, 3 * n)
    stages: list[tuple[str, nn.Module]] = [("stem", ConvNormAct(in_channels, 16, 3, **placement))]
    c_in = 16
    for s, width in enumerate((16, 32, 64)):
        blocks = []
        for b in range(n):
            stride = 2 if s > 0 and b == 0 else 1
            blocks.append(
                BasicBlock(c_in, width, stride=stride, shortcut="pad", drop_path_rate=rates[s * n + b], **placement)
            )
            c_in = width
        stages.append((f"stage{s + 1}", _stage(blocks)))
    model = ZooModel(nn.Sequential(OrderedDict(stages)), ClassifierHead(64, num_classes, **placement))
    if zero_init_last:
        zero_init_last_(model)
    return model


for _depth in (20, 32, 44, 56, 110):
    register_model(f"resnet{_depth}", family="cifar_resnet", paper=f"{_HE}, section 4.2", input_size=(3, 32, 32))(
        functools.partial(cifar_resnet, _depth)
    )


def imagenet_resnet(
    block: str,
    layers: Sequence[int],
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    groups: int = 1,
    width_per_group: int = 64,
    drop_path_rate: float = 0.0,
    zero_init_last: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """Torchvision's ResNet layout ("v1.5", stride in the 3x3 conv) built from blockzoo blocks."""
    placement: Placement = {"device": device, "dtype": dtype}
    expansion = 1 if block == "basic" else 4
    stem = nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(in_channels, 64, 7, stride=2, **placement),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        )
    )
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    rates = drop_path_rates(drop_path_rate, sum(layers))
    c_in, index = 64, 0
    for s, (planes, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
        blocks: list[nn.Module] = []
        out = planes * expansion
        for b in range(count):
            stride = 2 if s > 0 and b == 0 else 1
            if block == "basic":
                blocks.append(BasicBlock(c_in, out, stride=stride, drop_path_rate=rates[index], **placement))
            else:
                mid = int(planes * (width_per_group / 64.0)) * groups
                blocks.append(
                    Bottleneck(
                        c_in,
                        out,
                        mid_channels=mid,
                        stride=stride,
                        groups=groups,
                        drop_path_rate=rates[index],
                        **placement,
                    )
                )
            c_in, index = out, index + 1
        stages.append((f"stage{s + 1}", _stage(blocks)))
    model = ZooModel(nn.Sequential(OrderedDict(stages)), ClassifierHead(c_in, num_classes, **placement))
    if zero_init_last:
        zero_init_last_(model)
    return model


_IMAGENET = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64, _HE),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64, _HE),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64, _HE),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 1, 64, _HE),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 1, 64, _HE),
    "resnext50_32x4d": (
        "bottleneck",
        (3, 4, 6, 3),
        32,
        4,
        "Xie et al. 2017, Aggregated Residual Transformations (ResNeXt)",
    ),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), 1, 128, "Zagoruyko and Komodakis 2016, Wide Residual Networks"),
}


for _name, (_block, _layers, _groups, _width, _paper) in _IMAGENET.items():
    _family = "resnext" if _groups > 1 else "wide_resnet" if _width > 64 else "resnet"
    register_model(_name, family=_family, paper=_paper)(
        functools.partial(imagenet_resnet, _block, _layers, groups=_groups, width_per_group=_width)
    )
