"""DenseNet-BC (Huang et al. 2017), as torchvision builds it."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNormAct, DenseBlock, Transition
from blockzoo.layers import Placement, build_layer
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import register_model

_PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks"
# name: (growth rate, layers per dense block, stem width)
_CONFIGS: dict[str, tuple[int, tuple[int, ...], int]] = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}


def densenet(
    growth_rate: int,
    block_layers: Sequence[int],
    stem_width: int,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    memory_efficient: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """DenseNet-BC: a 7x7 stem and max pooling, dense blocks joined by halving transitions, a final norm.

    ``drop_rate`` is the dropout after each dense layer (torchvision's
    ``drop_rate``; the classifier has none); ``memory_efficient`` checkpoints
    each dense layer's concatenation and bottleneck in training (see
    :class:`~blockzoo.DenseLayer`).
    """
    placement: Placement = {"device": device, "dtype": dtype}
    stem = nn.Sequential(
        OrderedDict(
            conv=ConvNormAct(in_channels, stem_width, 7, stride=2, **placement),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        )
    )
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    c_in = stem_width
    for s, num_layers in enumerate(block_layers):
        block = DenseBlock(
            c_in,
            num_layers,
            growth_rate=growth_rate,
            bn_size=bn_size,
            drop_rate=drop_rate,
            memory_efficient=memory_efficient,
            **placement,
        )
        c_in = block.out_channels
        parts: list[tuple[str, nn.Module]] = [("block", block)]
        if s < len(block_layers) - 1:
            parts.append(("transition", Transition(c_in, c_in // 2, **placement)))
            c_in //= 2
        else:  # the last block ends in a norm and its activation, before the pooling of the head
            parts += [("norm", build_layer("norm", "batchnorm", c_in, **placement)), ("act", nn.ReLU(inplace=True))]
        stages.append((f"stage{s + 1}", nn.Sequential(OrderedDict(parts))))
    return ZooModel(nn.Sequential(OrderedDict(stages)), ClassifierHead(c_in, num_classes, **placement))


for _name, (_growth, _layers, _stem) in _CONFIGS.items():
    register_model(_name, family="densenet", paper=_PAPER)(functools.partial(densenet, _growth, _layers, _stem))
