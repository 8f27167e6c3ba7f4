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
    kwargs = {
        "mid_channels": mid,
        "groups": groups,
        "stride": draw(st.integers(1, 2)),
        "se_ratio": draw(st.sampled_from([None, 0.25])),
        "spatial_dims": nd,
    }
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


@st.composite
def layer_norm_2d(draw: st.DrawFn) -> Case:
    channels = draw(st.integers(1, 8))
    kwargs = {"eps": draw(st.sampled_from([1e-5, 1e-6])), "bias": draw(st.booleans())}
    return functools.partial(blockzoo.LayerNorm2d, channels, **kwargs), (2, channels, *_spatial(draw, 2, 1, 5))


@st.composite
def layer_scale(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(0, 3))
    channels = draw(st.integers(1, 8))
    shape = (2, *_spatial(draw, draw(st.integers(0, 2)), 1, 4), channels) if nd == 0 else (
        2, channels, *_spatial(draw, nd, 1, 4)
    )  # fmt: skip
    kwargs = {"init_value": draw(st.sampled_from([1e-6, 0.1, 1.0])), "spatial_dims": nd}
    return functools.partial(blockzoo.LayerScale, channels, **kwargs), shape


@st.composite
def convnext_block(draw: st.DrawFn) -> Case:
    channels = draw(st.integers(1, 8))
    kwargs = {
        "kernel_size": draw(st.sampled_from([3, 7])),
        "mlp_ratio": draw(st.sampled_from([1.0, 4.0])),
        "layer_scale_init": draw(st.sampled_from([None, 1e-6, 0.5])),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.2])),
    }
    return functools.partial(blockzoo.ConvNeXtBlock, channels, **kwargs), (2, channels, *_spatial(draw, 2, 2, 6))


def _heads(draw: st.DrawFn) -> tuple[int, int]:
    heads = draw(st.integers(1, 3))
    return heads * draw(st.integers(1, 4)), heads


@st.composite
def multi_head_self_attention(draw: st.DrawFn) -> Case:
    dim, heads = _heads(draw)
    kwargs = {
        "qkv_bias": draw(st.booleans()),
        "attn_drop_rate": draw(st.sampled_from([0.0, 0.1])),
        "proj_drop_rate": 0.1,
    }
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 6)), dim)
    return functools.partial(blockzoo.MultiHeadSelfAttention, dim, heads, **kwargs), shape


@st.composite
def transformer_block(draw: st.DrawFn) -> Case:
    dim, heads = _heads(draw)
    kwargs = {
        "mlp_ratio": draw(st.sampled_from([1.0, 2.0])),
        "drop_rate": draw(st.sampled_from([0.0, 0.1])),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.1])),
        "layer_scale_init": draw(st.sampled_from([None, 0.1])),
    }
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 6)), dim)
    return functools.partial(blockzoo.TransformerBlock, dim, heads, **kwargs), shape


@st.composite
def patch_embed(draw: st.DrawFn) -> Case:
    c_in, dim, patch = draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 4))
    shape = (2, c_in, *_spatial(draw, 2, patch, 3 * patch + 1))
    return functools.partial(blockzoo.PatchEmbed, c_in, dim, patch_size=patch), shape


@st.composite
def class_token(draw: st.DrawFn) -> Case:
    dim = draw(st.integers(1, 8))
    return functools.partial(blockzoo.ClassToken, dim), (draw(st.integers(1, 3)), draw(st.integers(0, 5)), dim)


@st.composite
def position_embedding(draw: st.DrawFn) -> Case:
    dim, prefix = draw(st.integers(1, 8)), draw(st.integers(0, 2))
    side, seen = draw(st.integers(1, 4)), draw(st.integers(1, 4))  # built for one grid, given another (or the same)
    factory = functools.partial(blockzoo.PositionEmbedding, side * side + prefix, dim, num_prefix_tokens=prefix)
    return factory, (draw(st.integers(1, 3)), seen * seen + prefix, dim)


def _window(draw: st.DrawFn) -> dict[str, int]:
    window = draw(st.integers(1, 4))
    return {"window_size": window, "shift_size": draw(st.integers(0, window - 1))}


def _channels_last_map(draw: st.DrawFn, dim: int) -> tuple[int, ...]:
    return (draw(st.integers(1, 2)), *_spatial(draw, 2, 1, 9), dim)  # padded, one window or several


@st.composite
def window_attention(draw: st.DrawFn) -> Case:
    dim, heads = _heads(draw)
    kwargs = {**_window(draw), "qkv_bias": draw(st.booleans()), "attn_drop_rate": draw(st.sampled_from([0.0, 0.1]))}
    return functools.partial(blockzoo.WindowAttention, dim, heads, **kwargs), _channels_last_map(draw, dim)


@st.composite
def swin_block(draw: st.DrawFn) -> Case:
    dim, heads = _heads(draw)
    kwargs = {
        **_window(draw),
        "mlp_ratio": draw(st.sampled_from([1.0, 2.0])),
        "drop_rate": draw(st.sampled_from([0.0, 0.1])),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.1])),
        "layer_scale_init": draw(st.sampled_from([None, 0.1])),
    }
    return functools.partial(blockzoo.SwinBlock, dim, heads, **kwargs), _channels_last_map(draw, dim)


@st.composite
def patch_merging(draw: st.DrawFn) -> Case:
    dim = draw(st.integers(1, 6))
    kwargs = {"out_dim": draw(st.sampled_from([None, 3])), "norm_layer": draw(st.sampled_from(["layernorm", None]))}
    return functools.partial(blockzoo.PatchMerging, dim, **kwargs), _channels_last_map(draw, dim)


def _heads_of_width(draw: st.DrawFn) -> tuple[int, int]:
    """A token width and a head width that divides it."""
    head_dim = draw(st.integers(1, 4))
    return head_dim * draw(st.integers(1, 3)), head_dim


@st.composite
def relative_position_attention(draw: st.DrawFn) -> Case:
    dim, head_dim = _heads_of_width(draw)
    window = draw(st.integers(1, 3))
    kwargs = {"head_dim": head_dim, "window_size": window, "scale": draw(st.sampled_from([None, 0.5]))}
    shape = (draw(st.integers(1, 3)), window * window, dim)
    return functools.partial(blockzoo.RelativePositionAttention, dim, **kwargs), shape


@st.composite
def partition_attention(draw: st.DrawFn) -> Case:
    dim, head_dim = _heads_of_width(draw)
    size = draw(st.integers(1, 3))
    kwargs = {
        "partition": draw(st.sampled_from(["window", "grid"])),
        "partition_size": size,
        "head_dim": head_dim,
        "mlp_ratio": draw(st.sampled_from([1.0, 2.0])),
        "drop_rate": draw(st.sampled_from([0.0, 0.1])),
        "drop_path_rate": draw(st.sampled_from([0.0, 0.1])),
    }
    shape = (draw(st.integers(1, 2)), dim, size * draw(st.integers(1, 3)), size * draw(st.integers(1, 3)))
    return functools.partial(blockzoo.PartitionAttention, dim, **kwargs), shape


@st.composite
def maxvit_mbconv(draw: st.DrawFn) -> Case:
    stride = draw(st.integers(1, 2))
    c_in, c_out = draw(st.integers(1, 6)), 4 * draw(st.integers(1, 2))
    kwargs = {"stride": stride, "drop_path_rate": draw(st.sampled_from([0.0, 0.2]))}
    return functools.partial(blockzoo.MaxViTMBConv, c_in, c_out, **kwargs), (2, c_in, *_spatial(draw, 2, 2, 6))


@st.composite
def maxvit_block(draw: st.DrawFn) -> Case:
    stride, size = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    c_in, c_out = draw(st.integers(1, 6)), 4 * draw(st.integers(1, 2))
    kwargs = {"stride": stride, "partition_size": size, "head_dim": 4, "mlp_ratio": 1.0}
    # the MBConv's output, stride times smaller, must be a multiple of the partition size on both sides
    spatial = [stride * size * draw(st.integers(1, 2)) for _ in range(2)]
    return functools.partial(blockzoo.MaxViTBlock, c_in, c_out, **kwargs), (2, c_in, *spatial)


@st.composite
def fire(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 3))
    c_in, squeeze, e1, e3 = (draw(st.integers(1, 6)) for _ in range(4))
    kwargs = {"norm_layer": draw(st.sampled_from([None, "batchnorm"])), "spatial_dims": nd}
    return functools.partial(blockzoo.Fire, c_in, squeeze, e1, e3, **kwargs), (2, c_in, *_spatial(draw, nd, 1, 6))


@st.composite
def shuffle_unit(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 2))
    stride = draw(st.integers(1, 2))
    c_out = 2 * draw(st.integers(1, 4))
    c_in = c_out if stride == 1 else draw(st.integers(1, 6))
    factory = functools.partial(blockzoo.ShuffleUnit, c_in, c_out, stride=stride, spatial_dims=nd)
    return factory, (2, c_in, *_spatial(draw, nd, 2, 6))


def _dense_options(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "growth_rate": draw(st.integers(1, 4)),
        "bn_size": draw(st.integers(1, 3)),
        "drop_rate": draw(st.sampled_from([0.0, 0.2])),
        "memory_efficient": draw(st.booleans()),
        "norm_layer": draw(st.sampled_from(["batchnorm", "groupnorm", None])),
        "spatial_dims": draw(st.integers(1, 2)),
    }


@st.composite
def dense_layer(draw: st.DrawFn) -> Case:
    kwargs, c_in = _dense_options(draw), draw(st.integers(1, 6))
    shape = (2, c_in, *_spatial(draw, kwargs["spatial_dims"], 1, 6))
    return functools.partial(blockzoo.DenseLayer, c_in, **kwargs), shape


@st.composite
def dense_block(draw: st.DrawFn) -> Case:
    kwargs, c_in = _dense_options(draw), draw(st.integers(1, 6))
    shape = (2, c_in, *_spatial(draw, kwargs["spatial_dims"], 1, 6))
    return functools.partial(blockzoo.DenseBlock, c_in, draw(st.integers(1, 3)), **kwargs), shape


@st.composite
def transition(draw: st.DrawFn) -> Case:
    nd = draw(st.integers(1, 2))  # bfloat16 3-d average pooling has no CPU kernel
    c_in, c_out = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kwargs = {"norm_layer": draw(st.sampled_from(["batchnorm", None])), "spatial_dims": nd}
    return functools.partial(blockzoo.Transition, c_in, c_out, **kwargs), (2, c_in, *_spatial(draw, nd, 2, 7))


STRATEGIES = {
    "LayerNorm2d": layer_norm_2d(),
    "LayerScale": layer_scale(),
    "ConvNeXtBlock": convnext_block(),
    "MultiHeadSelfAttention": multi_head_self_attention(),
    "TransformerBlock": transformer_block(),
    "PatchEmbed": patch_embed(),
    "ClassToken": class_token(),
    "PositionEmbedding": position_embedding(),
    "WindowAttention": window_attention(),
    "SwinBlock": swin_block(),
    "PatchMerging": patch_merging(),
    "RelativePositionAttention": relative_position_attention(),
    "PartitionAttention": partition_attention(),
    "MaxViTMBConv": maxvit_mbconv(),
    "MaxViTBlock": maxvit_block(),
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
    "Fire": fire(),
    "ShuffleUnit": shuffle_unit(),
    "DenseLayer": dense_layer(),
    "DenseBlock": dense_block(),
    "Transition": transition(),
}

DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def test_every_public_block_has_a_strategy() -> None:
    classes = {n for n in blockzoo.blocks.__all__ if isinstance(getattr(blockzoo.blocks, n), type)}  # not functions
    public = classes - {"Block", "ChannelsFirstBlock"}
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
