import io

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from blockzoo import infer_shape, trace_shapes
from blockzoo.shapes import conv_output_size, infer_shape_meta


@st.composite
def conv_cases(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, ...]]:
    nd = draw(st.integers(1, 3))
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2))
    p = draw(st.integers(0, 2))
    size = draw(st.integers(d * (k - 1) + 1, 9))
    transposed = draw(st.booleans())
    if transposed:
        cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[nd]
        op = draw(st.integers(0, max(0, min(s, d) - 1)))
        p = min(p, ((size - 1) * s + d * (k - 1) + op) // 2)  # keep the output non-empty
        layer = cls(2, 3, k, stride=s, padding=p, dilation=d, output_padding=op)
    else:
        layer = cls(2, 3, k, stride=s, padding=p, dilation=d)
    return layer, (draw(st.integers(1, 2)), 2, *([size] * nd))


@given(conv_cases())
def test_static_conv_shape_matches_forward(case: tuple[nn.Module, tuple[int, ...]]) -> None:
    layer, shape = case
    assert infer_shape(layer, shape) == layer(torch.zeros(shape)).shape


@st.composite
def pool_cases(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, ...]]:
    nd = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["max", "avg", "adaptive_avg", "adaptive_max"]))
    size = draw(st.integers(4, 9))
    if kind.startswith("adaptive"):
        cls = getattr(nn, f"{'AdaptiveAvg' if kind == 'adaptive_avg' else 'AdaptiveMax'}Pool{nd}d")
        layer = cls(draw(st.integers(1, 4)))
    else:
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, k // 2))
        cls = getattr(nn, f"{'Max' if kind == 'max' else 'Avg'}Pool{nd}d")
        layer = cls(k, stride=draw(st.integers(1, 3)), padding=pad, ceil_mode=draw(st.booleans()))
    return layer, (1, 2, *([size] * nd))


@given(pool_cases())
def test_static_pool_shape_matches_forward(case: tuple[nn.Module, tuple[int, ...]]) -> None:
    layer, shape = case
    assert infer_shape(layer, shape) == layer(torch.zeros(shape)).shape


def test_same_shape_layers_linear_flatten_sequential() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.GELU(),
        nn.Dropout(0.1),
        nn.Identity(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )
    assert infer_shape(net, (2, 3, 8, 8)) == torch.Size([2, 5])


def test_meta_fallback_for_unknown_modules_leaves_the_module_alone() -> None:
    up = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Upsample(scale_factor=2))
    before = {k: v.clone() for k, v in up.state_dict().items()}
    assert infer_shape(up, (1, 3, 5, 5)) == torch.Size([1, 3, 10, 10])
    assert infer_shape_meta(up, (1, 3, 5, 5)) == torch.Size([1, 3, 10, 10])
    assert all(torch.equal(before[k], v) and v.device.type == "cpu" for k, v in up.state_dict().items())


@pytest.mark.parametrize("bad", [(1, -2), "1x3", (1.5, 2), None])
def test_infer_shape_rejects_bad_shapes(bad: object) -> None:
    with pytest.raises(TypeError, match=r"input_shape must be a sequence of non-negative ints.*Received: input_shape="):
        infer_shape(nn.ReLU(), bad)  # type: ignore[arg-type]


def test_conv_output_size_formula() -> None:
    # torch's documented Conv2d formula, checked against the layer itself
    for size, k, s, p, d in [(32, 3, 1, 1, 1), (7, 3, 2, 0, 1), (9, 3, 2, 2, 2)]:
        out = nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, size)).shape[-1]
        assert conv_output_size(size, k, stride=s, padding=p, dilation=d) == out


def test_trace_shapes_prints_each_layer_and_restores_state() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    net.train()
    stats = net[1].running_mean.clone()
    buf = io.StringIO()
    records = trace_shapes(net, torch.randn(2, 1, 6, 6), file=buf)
    assert [r.name for r in records] == ["input", "0", "1", "2", "3"]
    assert [tuple(r.shape) for r in records] == [(2, 1, 6, 6), (2, 2, 4, 4), (2, 2, 4, 4), (2, 32), (2, 3)]
    assert all(r.dtype == torch.float32 and r.device.type == "cpu" for r in records)
    lines = buf.getvalue().splitlines()
    assert lines[0].split() == ["name", "layer", "output", "shape", "dtype", "device"]
    assert lines[-1].split()[:2] == ["3", "Linear"]
    assert net.training
    assert net[1].training
    assert torch.equal(net[1].running_mean, stats)
    assert not net[0]._forward_hooks


def test_trace_shapes_shows_the_rows_before_a_shape_error() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(10, 3))
    buf = io.StringIO()
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        trace_shapes(net, torch.randn(2, 1, 6, 6), file=buf)
    assert buf.getvalue().splitlines()[-1].split()[:3] == ["1", "Flatten", "[2,"]
    assert all(not m._forward_hooks for m in net.modules())


def test_meta_fallback_needs_one_tensor_out() -> None:
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    with pytest.raises(TypeError, match=r"infer_shape needs a module that returns one tensor; Pair returned tuple"):
        infer_shape(Pair(), (1, 2))


def test_trace_shapes_needs_a_tensor() -> None:
    with pytest.raises(TypeError, match=r"trace_shapes needs a tensor input\. Received: x=list"):
        trace_shapes(nn.ReLU(), [1.0])  # type: ignore[arg-type]
