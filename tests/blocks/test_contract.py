"""Every block passes blockzoo.testing.check_block on drawn, valid configurations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import blockzoo
from blockzoo.testing import check_block, conv_configs
from support import DEVICES

Case = tuple[Callable[..., nn.Module], tuple[int, ...]]

NORMS = st.sampled_from(["batchnorm", "groupnorm", "layernorm", "instancenorm", None])
ACTS = st.sampled_from(["relu", "gelu", "silu", "prelu", "hardswish", None])


def _spatial(draw: st.DrawFn, nd: int, low: int, high: int = 9) -> list[int]:
    return draw(st.lists(st.integers(low, max(low, high)), min_size=nd, max_size=nd))


@st.composite
def conv_norm_act(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    cfg = draw(conv_configs(spatial_dims=nd, max_channels=8))
    cfg.update(
        norm_layer=draw(NORMS), act_layer=draw(ACTS), order=draw(st.sampled_from(["conv-norm-act", "norm-act-conv"]))
    )
    # big enough that every norm sees more than one value per channel
    low = cfg["dilation"] * (cfg["kernel_size"] - 1) + 1 + 2 * cfg["stride"]
    shape = (2, cfg["in_channels"], *_spatial(draw, nd, low, low + 3))
    return functools.partial(blockzoo.ConvNormAct, **cfg), shape


@st.composite
def conv_block(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 2))
    c_in, c_out = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pool, size = draw(st.sampled_from([("max", 2), ("avg", 2), ("max", 3), (None, 2), ("adaptive_avg", 2)]))
    kwargs: dict[str, Any] = {
        "num_convs": draw(st.integers(1, 2)),
        "pool_layer": pool,
        "pool_size": size,
        "drop_rate": draw(st.sampled_from([0.0, 0.3])),
        "norm_layer": draw(st.sampled_from(["batchnorm", "groupnorm", None])),
        "act_layer": draw(ACTS),
        "spatial_dims": nd,
    }
    shape = (2, c_in, *_spatial(draw, nd, 3, 8))
    return functools.partial(blockzoo.ConvBlock, c_in, c_out, **kwargs), shape


@st.composite
def depthwise_separable(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    c_in, c_out = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kwargs = {
        "kernel_size": draw(st.sampled_from([3, 5])),
        "stride": draw(st.integers(1, 2)),
        "pw_act_layer": draw(st.sampled_from(["relu", None])),
        "spatial_dims": nd,
    }
    shape = (2, c_in, *_spatial(draw, nd, 3, 7))
    return functools.partial(blockzoo.DepthwiseSeparableConv, c_in, c_out, **kwargs), shape


@st.composite
def squeeze_excite(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 16))
    kwargs = {
        "rd_ratio": draw(st.sampled_from([0.25, 0.5, 1.0])),
        "gate_layer": draw(st.sampled_from(["sigmoid", "hardsigmoid"])),
        "spatial_dims": nd,
    }
    shape = (draw(st.integers(1, 3)), channels, *_spatial(draw, nd, 1, 5))
    return functools.partial(blockzoo.SqueezeExcite, channels, **kwargs), shape


@st.composite
def mlp(draw: st.DrawFn) -> Case:
    norm = draw(st.sampled_from([None, "batchnorm", "layernorm"]))
    in_f = draw(st.integers(1, 12))
    hidden = tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=3)))
    out = draw(st.one_of(st.none(), st.integers(1, 6)))
    lead = [] if norm == "batchnorm" else draw(st.lists(st.integers(1, 3), max_size=2))
    shape = (draw(st.integers(2, 4)), *lead, in_f)
    kwargs = {"norm_layer": norm, "act_layer": draw(ACTS), "drop_rate": draw(st.sampled_from([0.0, 0.2]))}
    return functools.partial(blockzoo.MLP, in_f, hidden, out, **kwargs), shape


@st.composite
def classifier_head(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 8))
    spatial = _spatial(draw, nd, 1, 4)
    pool = draw(st.sampled_from(["adaptive_avg", "adaptive_max", "global_avg", "global_max", None]))
    in_features = channels * (1 if pool else int(torch.tensor(spatial).prod()))
    kwargs = {
        "pool_layer": pool,
        "drop_rate": draw(st.sampled_from([0.0, 0.5])),
        "hidden_features": tuple(draw(st.lists(st.integers(1, 8), max_size=2))),
        "log_probs": draw(st.booleans()),
        "spatial_dims": nd,
    }
    return functools.partial(blockzoo.ClassifierHead, in_features, draw(st.integers(0, 5)), **kwargs), (
        2,
        channels,
        *spatial,
    )


@st.composite
def drop_path(draw: st.DrawFn) -> Case:
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=5)))
    kwargs = {"mode": draw(st.sampled_from(["row", "batch"]))}
    return functools.partial(blockzoo.DropPath, draw(st.sampled_from([0.0, 0.1, 0.9])), **kwargs), shape


@st.composite
def drop_block(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    shape = (2, draw(st.integers(1, 4)), *_spatial(draw, nd, 1, 8))
    block_size = draw(st.integers(1, 7))
    return functools.partial(blockzoo.DropBlock, draw(st.sampled_from([0.1, 0.5])), block_size, spatial_dims=nd), shape


@st.composite
def basic_block(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    c_in = draw(st.integers(1, 6))
    stride = draw(st.integers(1, 2))
    shortcut = draw(st.sampled_from(["conv", "pad"]))
    c_out = draw(st.integers(c_in if shortcut == "pad" else 1, 8))
    kwargs = {
        "stride": stride,
        "shortcut": shortcut,
        "drop_path_rate": draw(st.sampled_from([0.0, 0.2])),
        "spatial_dims": nd,
    }
    return functools.partial(blockzoo.BasicBlock, c_in, c_out, **kwargs), (2, c_in, *_spatial(draw, nd, 3, 6))


@st.composite
def bottleneck(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 2]))
    mid = groups * draw(st.integers(1, 3))
    c_in, c_out = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kwargs = {"mid_channels": mid, "groups": groups, "stride": draw(st.integers(1, 2)), "spatial_dims": nd}
    return functools.partial(blockzoo.Bottleneck, c_in, c_out, **kwargs), (2, c_in, *_spatial(draw, nd, 3, 6))


@st.composite
def inverted_residual(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 2))
    c_in = draw(st.integers(1, 6))
    c_out = draw(st.sampled_from([c_in, draw(st.integers(1, 6))]))
    kwargs = {
        "stride": draw(st.integers(1, 2)),
        "expand_ratio": draw(st.sampled_from([1, 2, 6])),
        "se_ratio": draw(st.sampled_from([None, 0.25])),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.1])),
        "spatial_dims": nd,
    }
    return functools.partial(blockzoo.InvertedResidual, c_in, c_out, **kwargs), (2, c_in, *_spatial(draw, nd, 3, 6))


@st.composite
def mbconv(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 2))
    c_in = draw(st.integers(1, 6))
    c_out = draw(st.sampled_from([c_in, draw(st.integers(1, 6))]))
    kwargs = {
        "stride": draw(st.integers(1, 2)),
        "expand_ratio": draw(st.sampled_from([1, 2, 4])),
        "se_ratio": draw(st.sampled_from([None, 0.25, 1.0])),
        "se_gate_layer": draw(st.sampled_from(["sigmoid", "hardsigmoid"])),
        "act_layer": draw(st.sampled_from(["silu", "hardswish", "relu"])),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.1])),
        "spatial_dims": nd,
    }
    return functools.partial(blockzoo.MBConv, c_in, c_out, **kwargs), (2, c_in, *_spatial(draw, nd, 3, 6))


@st.composite
def fused_mbconv(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 2))
    c_in = draw(st.integers(1, 6))
    c_out = draw(st.sampled_from([c_in, draw(st.integers(1, 6))]))
    kwargs = {
        "stride": draw(st.integers(1, 2)),
        "expand_ratio": draw(st.sampled_from([1, 4])),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.1])),
        "spatial_dims": nd,
    }
    return functools.partial(blockzoo.FusedMBConv, c_in, c_out, **kwargs), (2, c_in, *_spatial(draw, nd, 3, 6))


@st.composite
def pad_shortcut(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    c_in = draw(st.integers(1, 6))
    kwargs = {"stride": draw(st.integers(1, 3)), "spatial_dims": nd}
    factory = functools.partial(blockzoo.blocks.PadShortcut, c_in, c_in + draw(st.integers(0, 4)), **kwargs)
    return factory, (2, c_in, *_spatial(draw, nd, 1, 7))


def _residual_mlp(features: int, *, device=None, dtype=None) -> nn.Module:  # type: ignore[no-untyped-def]
    branch = blockzoo.MLP(features, (features,), features, device=device, dtype=dtype)
    return blockzoo.ResidualBlock(branch, act_layer="gelu", drop_path_rate=0.1, device=device, dtype=dtype)


@st.composite
def residual_block(draw: st.DrawFn) -> Case:
    features = draw(st.integers(1, 8))
    return functools.partial(_residual_mlp, features), (draw(st.integers(1, 3)), features)


STRATEGIES = {
    "ConvNormAct": conv_norm_act(),
    "ConvBlock": conv_block(),
    "DepthwiseSeparableConv": depthwise_separable(),
    "SqueezeExcite": squeeze_excite(),
    "MLP": mlp(),
    "ClassifierHead": classifier_head(),
    "DropPath": drop_path(),
    "DropBlock": drop_block(),
    "BasicBlock": basic_block(),
    "Bottleneck": bottleneck(),
    "InvertedResidual": inverted_residual(),
    "MBConv": mbconv(),
    "FusedMBConv": fused_mbconv(),
    "PadShortcut": pad_shortcut(),
    "ResidualBlock": residual_block(),
}

DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def test_every_public_block_has_a_strategy() -> None:
    public = {n for n in blockzoo.blocks.__all__ if n not in ("Block", "ChannelsFirstBlock")}
    assert public == set(STRATEGIES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: str(t).removeprefix("torch."))
@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=5)
@given(data=st.data())
def test_check_block(name: str, dtype: torch.dtype, device: str, data: st.DataObject) -> None:
    factory, shape = data.draw(STRATEGIES[name], label=name)
    check_block(factory, shape, dtypes=[dtype], devices=[device])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=4)
@given(data=st.data())
def test_check_block_float16_on_cuda(name: str, data: st.DataObject) -> None:
    factory, shape = data.draw(STRATEGIES[name], label=name)
    check_block(factory, shape, dtypes=[torch.float16], devices=["cuda"])
