"""The course's small models: an MLP, LeNet-5, the PyTorch tutorial CNN and the course's CNN."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from blockzoo._checks import check_positive_int
from blockzoo._types import DeviceLike
from blockzoo.blocks import MLP, ClassifierHead, ConvBlock, ConvNormAct
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import register_model


@register_model("mlp", family="mlp", paper="the course's MNIST multilayer perceptron", input_size=(1, 28, 28))
def mlp(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    img_size: int = 28,
    hidden_features: Sequence[int] = (128, 64),
    drop_rate: float = 0.0,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """The course's MNIST MLP: flatten, ReLU hidden layers, a linear classifier."""
    placement: Placement = {"device": device, "dtype": dtype}
    flat = check_positive_int("in_channels", in_channels) * check_positive_int("img_size", img_size) ** 2
    features = nn.Sequential(
        OrderedDict(flatten=nn.Flatten(1), mlp=MLP(flat, hidden_features, drop_rate=drop_rate, **placement))
    )
    return ZooModel(features, ClassifierHead(hidden_features[-1], num_classes, pool_layer=None, **placement))


@register_model(
    "lenet5",
    family="lenet",
    paper="LeCun et al. 1998, Gradient-based learning applied to document recognition",
    input_size=(1, 32, 32),
)
def lenet5(
    *, num_classes: int = 10, in_channels: int = 1, device: DeviceLike = None, dtype: torch.dtype | None = None
) -> ZooModel:
    """LeNet-5: C1-S2-C3-S4-C5 with tanh and average pooling, then F6 and the output layer.

    C3 is fully connected to S2's six maps (the paper's partial connection table is not reproduced).
    """
    placement: Placement = {"device": device, "dtype": dtype}
    conv: dict[str, Any] = {"norm_layer": None, "act_layer": "tanh", **placement}
    features = nn.Sequential(
        OrderedDict(
            c1=_valid_conv_block(in_channels, 6, nn.AvgPool2d, conv),  # C1 and S2: 32 -> 28 -> 14
            c3=_valid_conv_block(6, 16, nn.AvgPool2d, conv),  # C3 and S4: 14 -> 10 -> 5
            c5=ConvNormAct(16, 120, 5, padding=0, **conv),  # 5 -> 1
        )
    )
    head = ClassifierHead(120, num_classes, pool_layer=None, hidden_features=(84,), act_layer="tanh", **placement)
    return ZooModel(features, head)


@register_model(
    "tutorial_cnn",
    family="tutorial_cnn",
    paper="the PyTorch CIFAR-10 tutorial (Training a Classifier)",
    input_size=(3, 32, 32),
)
def tutorial_cnn(
    *, num_classes: int = 10, in_channels: int = 3, device: DeviceLike = None, dtype: torch.dtype | None = None
) -> ZooModel:
    """Two 5x5 conv-ReLU-max-pool stages (6 and 16 maps), then 120 and 84 hidden units."""
    placement: Placement = {"device": device, "dtype": dtype}
    stage: dict[str, Any] = {"norm_layer": None, "act_layer": "relu", **placement}
    features = nn.Sequential(
        OrderedDict(
            conv1=_valid_conv_block(in_channels, 6, nn.MaxPool2d, stage),  # 32 -> 28 -> 14
            conv2=_valid_conv_block(6, 16, nn.MaxPool2d, stage),  # 14 -> 10 -> 5
        )
    )
    head = ClassifierHead(16 * 5 * 5, num_classes, pool_layer=None, hidden_features=(120, 84), **placement)
    return ZooModel(features, head)


def _valid_conv_block(c_in: int, c_out: int, pool: type[nn.Module], options: Mapping[str, Any]) -> nn.Module:
    """A 5x5 conv without padding (as LeNet and the tutorial), its activation and 2x2 pooling."""
    return nn.Sequential(OrderedDict(conv=ConvNormAct(c_in, c_out, 5, padding=0, **options), pool=pool(2)))


@register_model(
    "simple_cnn",
    family="simple_cnn",
    paper="the course's CIFAR-10 CNN: conv-BN-ReLU-max-pool stages and a fully connected head",
    input_size=(3, 32, 32),
)
def simple_cnn(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    widths: Sequence[int] = (32, 64, 128),
    img_size: int = 32,
    drop_rate: float = 0.0,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """One :class:`~blockzoo.ConvBlock` per width (each halves the size), then a flattening classifier."""
    placement: Placement = {"device": device, "dtype": dtype}
    chans = (in_channels, *widths)
    features = nn.Sequential(
        OrderedDict(
            (f"stage{i + 1}", ConvBlock(a, b, **placement)) for i, (a, b) in enumerate(itertools.pairwise(chans))
        )
    )
    side = check_positive_int("img_size", img_size) // 2 ** len(widths)
    if side < 1:
        raise ValueError(
            f"img_size must be at least {2 ** len(widths)} for {len(widths)} pooling stages. Received: img_size={img_size}"
        )
    head = ClassifierHead(widths[-1] * side * side, num_classes, pool_layer=None, drop_rate=drop_rate, **placement)
    return ZooModel(features, head)
