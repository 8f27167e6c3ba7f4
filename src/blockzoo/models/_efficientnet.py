"""EfficientNet v1 (Tan and Le 2019) and v2 (Tan and Le 2021), as torchvision builds them."""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import nn

from blockzoo._checks import check_probability
from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNormAct, FusedMBConv, MBConv
from blockzoo.layers import LayerSpec, Placement
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import Builder, register_model
from blockzoo.models._rounding import TF_BATCH_NORM, round_channels

_V1_PAPER = "Tan and Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"
_V2_PAPER = "Tan and Le 2021, EfficientNetV2: Smaller Models and Faster Training"


@dataclass(frozen=True)
class _Stage:
    """One row of the papers' tables: block kind, expansion, kernel, first stride, channels in and out, repeats."""

    fused: bool
    expand: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    repeats: int


# Tan and Le 2019, table 1 (the stem has 32 channels; the first row's input)
_B0 = [
    _Stage(False, 1, 3, 1, 32, 16, 1),
    _Stage(False, 6, 3, 2, 16, 24, 2),
    _Stage(False, 6, 5, 2, 24, 40, 2),
    _Stage(False, 6, 3, 2, 40, 80, 3),
    _Stage(False, 6, 5, 1, 80, 112, 3),
    _Stage(False, 6, 5, 2, 112, 192, 4),
    _Stage(False, 6, 3, 1, 192, 320, 1),
]
# Tan and Le 2021, table 4 (S), and torchvision's M and L
_V2 = {
    "s": [
        _Stage(True, 1, 3, 1, 24, 24, 2),
        _Stage(True, 4, 3, 2, 24, 48, 4),
        _Stage(True, 4, 3, 2, 48, 64, 4),
        _Stage(False, 4, 3, 2, 64, 128, 6),
        _Stage(False, 6, 3, 1, 128, 160, 9),
        _Stage(False, 6, 3, 2, 160, 256, 15),
    ],
    "m": [
        _Stage(True, 1, 3, 1, 24, 24, 3),
        _Stage(True, 4, 3, 2, 24, 48, 5),
        _Stage(True, 4, 3, 2, 48, 80, 5),
        _Stage(False, 4, 3, 2, 80, 160, 7),
        _Stage(False, 6, 3, 1, 160, 176, 14),
        _Stage(False, 6, 3, 2, 176, 304, 18),
        _Stage(False, 6, 3, 1, 304, 512, 5),
    ],
    "l": [
        _Stage(True, 1, 3, 1, 32, 32, 4),
        _Stage(True, 4, 3, 2, 32, 64, 7),
        _Stage(True, 4, 3, 2, 64, 96, 7),
        _Stage(False, 4, 3, 2, 96, 192, 10),
        _Stage(False, 6, 3, 1, 192, 224, 19),
        _Stage(False, 6, 3, 2, 224, 384, 25),
        _Stage(False, 6, 3, 1, 384, 640, 7),
    ],
}


def _scaled(width: float, depth: float) -> list[_Stage]:
    return [
        replace(
            s,
            in_channels=round_channels(s.in_channels * width),
            out_channels=round_channels(s.out_channels * width),
            repeats=math.ceil(s.repeats * depth),
        )
        for s in _B0
    ]


def efficientnet(
    stages: list[_Stage],
    last_channels: int,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.2,
    drop_path_rate: float = 0.2,
    norm_layer: LayerSpec = "batchnorm",
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """An EfficientNet: a stride-2 SiLU stem, stages of (Fused)MBConv blocks, a 1x1 conv, and the classifier.

    The stochastic-depth rate of block ``i`` of ``n`` is ``drop_path_rate * i / n``,
    torchvision's rule for its ``stochastic_depth_prob``.
    """
    rate = check_probability("drop_path_rate", drop_path_rate)
    placement: Placement = {"device": device, "dtype": dtype}
    common = {"norm_layer": norm_layer, **placement}
    stem = ConvNormAct(in_channels, stages[0].in_channels, 3, stride=2, act_layer="silu", **common)  # type: ignore[arg-type]
    layers: list[tuple[str, nn.Module]] = [("stem", stem)]
    total = sum(s.repeats for s in stages)
    index = 0
    for number, s in enumerate(stages, start=1):
        blocks: list[nn.Module] = []
        c_in = s.in_channels
        for i in range(s.repeats):
            block = FusedMBConv if s.fused else MBConv
            blocks.append(
                block(
                    c_in,
                    s.out_channels,
                    s.kernel,
                    stride=s.stride if i == 0 else 1,
                    expand_ratio=s.expand,
                    drop_path_rate=rate * index / total,
                    **common,  # type: ignore[arg-type]
                )
            )
            c_in, index = s.out_channels, index + 1
        layers.append((f"stage{number}", nn.Sequential(*blocks)))
    layers.append(("last", ConvNormAct(c_in, last_channels, 1, act_layer="silu", **common)))  # type: ignore[arg-type]
    head = ClassifierHead(last_channels, num_classes, drop_rate=drop_rate, **placement)
    return ZooModel(nn.Sequential(OrderedDict(layers)), head)


def _builder(stages: list[_Stage], last_channels: int, dropout: float, norm_layer: LayerSpec) -> Builder:
    """A registered builder: the architecture fixed, the usual options open."""

    def build(
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        drop_rate: float = dropout,
        drop_path_rate: float = 0.2,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> ZooModel:
        return efficientnet(
            stages,
            last_channels,
            num_classes=num_classes,
            in_channels=in_channels,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            norm_layer=norm_layer,
            device=device,
            dtype=dtype,
        )

    return build


# width, depth, dropout, norm (torchvision's: b5 and up, and v2, use TensorFlow's batch-norm settings), input side
_V1: dict[str, tuple[float, float, float, LayerSpec, int]] = {
    "b0": (1.0, 1.0, 0.2, "batchnorm", 224),
    "b1": (1.0, 1.1, 0.2, "batchnorm", 240),
    "b2": (1.1, 1.2, 0.3, "batchnorm", 288),
    "b3": (1.2, 1.4, 0.3, "batchnorm", 300),
    "b4": (1.4, 1.8, 0.4, "batchnorm", 380),
    "b5": (1.6, 2.2, 0.4, TF_BATCH_NORM, 456),
    "b6": (1.8, 2.6, 0.5, TF_BATCH_NORM, 528),
    "b7": (2.0, 3.1, 0.5, TF_BATCH_NORM, 600),
}
for _variant, (_width, _depth, _drop, _norm, _side) in _V1.items():
    _stages = _scaled(_width, _depth)
    register_model(f"efficientnet_{_variant}", family="efficientnet", paper=_V1_PAPER, input_size=(3, _side, _side))(
        _builder(_stages, 4 * _stages[-1].out_channels, _drop, _norm)
    )

_V2_NORM = functools.partial(nn.BatchNorm2d, eps=1e-3)
for _variant, _drop, _side in (("s", 0.2, 384), ("m", 0.3, 480), ("l", 0.4, 480)):
    register_model(
        f"efficientnet_v2_{_variant}", family="efficientnet_v2", paper=_V2_PAPER, input_size=(3, _side, _side)
    )(_builder(_V2[_variant], 1280, _drop, _V2_NORM))
