"""MobileNet v3 (Howard et al. 2019), as torchvision builds it."""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from blockzoo._checks import check_probability
from blockzoo._types import DeviceLike
from blockzoo.blocks import ClassifierHead, ConvNormAct, MBConv
from blockzoo.blocks._drop import drop_path_rates
from blockzoo.layers import Placement
from blockzoo.models._base import ZooModel
from blockzoo.models._registry import register_model
from blockzoo.models._rounding import TF_BATCH_NORM, round_channels

_PAPER = "Howard et al. 2019, Searching for MobileNetV3"
_NORM = TF_BATCH_NORM  # torchvision's MobileNet v3 keeps TensorFlow's batch-norm settings


class _Bneck(NamedTuple):
    """One row of the paper's tables 1 and 2: kernel, expanded width, output width, SE, hard swish, stride."""

    kernel: int
    mid: int
    out: int
    se: bool
    hswish: bool
    stride: int


_LARGE = [
    _Bneck(3, 16, 16, False, False, 1),
    _Bneck(3, 64, 24, False, False, 2),
    _Bneck(3, 72, 24, False, False, 1),
    _Bneck(5, 72, 40, True, False, 2),
    _Bneck(5, 120, 40, True, False, 1),
    _Bneck(5, 120, 40, True, False, 1),
    _Bneck(3, 240, 80, False, True, 2),
    _Bneck(3, 200, 80, False, True, 1),
    _Bneck(3, 184, 80, False, True, 1),
    _Bneck(3, 184, 80, False, True, 1),
    _Bneck(3, 480, 112, True, True, 1),
    _Bneck(3, 672, 112, True, True, 1),
    _Bneck(5, 672, 160, True, True, 2),
    _Bneck(5, 960, 160, True, True, 1),
    _Bneck(5, 960, 160, True, True, 1),
]
_SMALL = [
    _Bneck(3, 16, 16, True, False, 2),
    _Bneck(3, 72, 24, False, False, 2),
    _Bneck(3, 88, 24, False, False, 1),
    _Bneck(5, 96, 40, True, True, 2),
    _Bneck(5, 240, 40, True, True, 1),
    _Bneck(5, 240, 40, True, True, 1),
    _Bneck(5, 120, 48, True, True, 1),
    _Bneck(5, 144, 48, True, True, 1),
    _Bneck(5, 288, 96, True, True, 2),
    _Bneck(5, 576, 96, True, True, 1),
    _Bneck(5, 576, 96, True, True, 1),
]


def _stages(rows: list[_Bneck]) -> list[list[_Bneck]]:
    """The rows grouped into stages, a new one at each stride-2 block (the first stage may hold a stride-1 block)."""
    stages: list[list[_Bneck]] = []
    for row in rows:
        if row.stride > 1 or not stages:
            stages.append([])
        stages[-1].append(row)
    return stages


def mobilenet_v3(
    rows: list[_Bneck],
    last_channels: int,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    drop_rate: float = 0.2,
    drop_path_rate: float = 0.0,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> ZooModel:
    """MobileNet v3: a hard-swish stem, MBConv blocks (ReLU / hard-sigmoid squeeze-excite), and a two-layer head."""
    placement: Placement = {"device": device, "dtype": dtype}
    rates = drop_path_rates(check_probability("drop_path_rate", drop_path_rate), len(rows))
    layers: list[tuple[str, nn.Module]] = [
        ("stem", ConvNormAct(in_channels, 16, 3, stride=2, norm_layer=_NORM, act_layer="hardswish", **placement))
    ]
    c_in, index = 16, 0
    for number, stage in enumerate(_stages(rows), start=1):
        blocks: list[nn.Module] = []
        for row in stage:
            blocks.append(
                MBConv(
                    c_in,
                    row.out,
                    row.kernel,
                    stride=row.stride,
                    mid_channels=row.mid,
                    se_ratio=None,
                    se_channels=round_channels(row.mid // 4) if row.se else None,
                    se_act_layer="relu",
                    se_gate_layer="hardsigmoid",
                    norm_layer=_NORM,
                    act_layer="hardswish" if row.hswish else "relu",
                    drop_path_rate=rates[index],
                    **placement,
                )
            )
            c_in, index = row.out, index + 1
        layers.append((f"stage{number}", nn.Sequential(*blocks)))
    layers.append(("last", ConvNormAct(c_in, 6 * c_in, 1, norm_layer=_NORM, act_layer="hardswish", **placement)))
    head = ClassifierHead(
        6 * c_in,
        num_classes,
        hidden_features=(last_channels,),
        act_layer="hardswish",
        drop_rate=drop_rate,
        **placement,
    )
    return ZooModel(nn.Sequential(OrderedDict(layers)), head)


register_model("mobilenet_v3_large", family="mobilenet_v3", paper=_PAPER)(functools.partial(mobilenet_v3, _LARGE, 1280))
register_model("mobilenet_v3_small", family="mobilenet_v3", paper=_PAPER)(functools.partial(mobilenet_v3, _SMALL, 1024))
