"""DenseNet's, ShuffleNet v2's and SqueezeNet's blocks: their laws, their options and their messages."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import blockzoo
from blockzoo import DenseBlock, DenseLayer, Fire, InputError, ShuffleUnit, Transition
from blockzoo.blocks import channel_shuffle


@settings(max_examples=20)
@given(groups=st.integers(1, 4), per_group=st.integers(1, 4), h=st.integers(1, 3))
def test_channel_shuffle_moves_channel_g_k_plus_i_to_i_groups_plus_g(groups: int, per_group: int, h: int) -> None:
    c = groups * per_group
    x = torch.randn(2, c, h, h)
    out = channel_shuffle(x, groups)
    for g in range(groups):
        for i in range(per_group):
            assert torch.equal(out[:, i * groups + g], x[:, g * per_group + i])
    assert torch.equal(channel_shuffle(out, per_group), x)  # shuffling back with the other factor undoes it


def test_channel_shuffle_checks_its_groups() -> None:
    x = torch.randn(1, 6, 2, 2)
    with pytest.raises(
        ValueError, match=r"groups must divide the channels of x \(6, of shape \[1, 6, 2, 2\]\)\. Received: groups=4"
    ):
        channel_shuffle(x, 4)
    with pytest.raises(ValueError, match=r"groups must be .*Received: groups=0"):
        channel_shuffle(x, 0)
    with pytest.raises(ValueError, match=r"groups must be a positive int\. Received: groups=2\.0"):
        channel_shuffle(x, 2.0)  # type: ignore[arg-type]


def test_channel_shuffle_keeps_channels_last() -> None:
    x = torch.randn(2, 6, 3, 3).contiguous(memory_format=torch.channels_last)
    assert channel_shuffle(x, 2).is_contiguous(memory_format=torch.channels_last)


def test_shuffle_unit_at_stride_1_passes_the_first_half_on_in_the_even_channels() -> None:
    unit = ShuffleUnit(8, 8).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        out = unit(x)
        assert torch.equal(out[:, 0::2], x[:, :4])
        assert torch.equal(out[:, 1::2], unit.branch2(x[:, 4:]))


def test_shuffle_unit_at_stride_2_interleaves_both_branches() -> None:
    unit = ShuffleUnit(6, 10, stride=2).eval()
    x = torch.randn(2, 6, 7, 7)
    with torch.no_grad():
        out = unit(x)
        assert out.shape == (2, 10, 4, 4)
        assert torch.equal(out[:, 0::2], unit.branch1(x))
        assert torch.equal(out[:, 1::2], unit.branch2(x))


def test_shuffle_unit_messages() -> None:
    with pytest.raises(ValueError, match=r"out_channels must be even: .*Received: out_channels=7"):
        ShuffleUnit(8, 7, stride=2)
    with pytest.raises(ValueError, match=r"out_channels must equal in_channels \(8\).*Received: out_channels=16"):
        ShuffleUnit(8, 16)


def test_fire_concatenates_the_two_expands_of_the_squeeze() -> None:
    fire = Fire(6, 3, 4, 5).eval()
    x = torch.randn(2, 6, 5, 5)
    s = F.relu(F.conv2d(x, fire.squeeze.conv.weight, fire.squeeze.conv.bias))
    e1 = F.relu(F.conv2d(s, fire.expand1x1.conv.weight, fire.expand1x1.conv.bias))
    e3 = F.relu(F.conv2d(s, fire.expand3x3.conv.weight, fire.expand3x3.conv.bias, padding=1))
    with torch.no_grad():
        torch.testing.assert_close(fire(x), torch.cat([e1, e3], 1))
    with pytest.raises(ValueError, match=r"squeeze_channels must be a positive int.*Received: squeeze_channels=0"):
        Fire(6, 0, 4, 5)


def test_dense_block_output_starts_with_its_input_and_each_layer_reads_all_before_it() -> None:
    block = DenseBlock(5, 3, growth_rate=2, bn_size=2).eval()
    x = torch.randn(2, 5, 4, 4)
    with torch.no_grad():
        out = block(x)
        assert out.shape == (2, 5 + 3 * 2, 4, 4)
        assert torch.equal(out[:, :5], x)
        for i, layer in enumerate(block.layers):
            width = 5 + 2 * i
            torch.testing.assert_close(out[:, width : width + 2], layer(out[:, :width]))


def test_dense_layer_takes_a_list_as_its_concatenation() -> None:
    layer = DenseLayer(7, growth_rate=3, bn_size=2).eval()
    parts = [torch.randn(2, 4, 3, 3), torch.randn(2, 3, 3, 3)]
    with torch.no_grad():
        torch.testing.assert_close(layer(parts), layer(torch.cat(parts, 1)))
    with pytest.raises(
        InputError,
        match=r"(?s)DenseLayer expected .*received \[2, 6, 3, 3\].*a list of maps is concatenated.*\[\[2, 4, 3, 3\], \[2, 2, 3, 3\]\]",
    ):
        layer([parts[0], torch.randn(2, 2, 3, 3)])
    with pytest.raises(ValueError, match=r"drop_rate must be .*Received: drop_rate=1"):
        DenseLayer(7, drop_rate=1)
    with pytest.raises(TypeError, match=r"memory_efficient must be True or False\. Received: memory_efficient=1"):
        DenseLayer(7, memory_efficient=1)  # type: ignore[arg-type]


def test_memory_efficient_recomputes_the_bottleneck_and_changes_nothing_else() -> None:
    torch.manual_seed(0)
    plain = DenseBlock(4, 3, growth_rate=2, bn_size=2)
    efficient = DenseBlock(4, 3, growth_rate=2, bn_size=2, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    calls = []
    efficient.layers[1].norm1.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    outs = []
    for block in (plain, efficient):
        out = block(x)
        out.square().sum().backward()
        outs.append((out.detach(), x.grad.clone(), [p.grad.clone() for p in block.parameters()]))
        x.grad = None
    assert len(calls) == 2  # once forward, once again in the backward pass
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])
    for a, b in zip(outs[0][2], outs[1][2], strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        calls.clear()
        efficient(x)
        assert len(calls) == 1


def _one_training_step(block: torch.nn.Module, x: torch.Tensor, *, compile: bool = False) -> dict[str, torch.Tensor]:
    optimizer = torch.optim.SGD(block.parameters(), lr=0.1)
    run = torch.compile(block, fullgraph=True) if compile else block
    run(x).square().mean().backward()
    optimizer.step()
    return block.state_dict()


@pytest.mark.parametrize("momentum", [0.1, None])  # None: the cumulative average, which counts batches
def test_memory_efficient_training_step_leaves_the_plain_blocks_state(momentum: float | None) -> None:
    # The backward pass recomputes norm1 in training mode: its running statistics must move once per step.
    torch.manual_seed(0)
    norm = functools.partial(torch.nn.BatchNorm2d, momentum=momentum)
    plain = DenseBlock(4, 2, growth_rate=2, bn_size=2, norm_layer=norm)
    efficient = copy.deepcopy(plain)
    for layer in efficient.layers:
        layer.memory_efficient = True
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    expected, got = _one_training_step(plain, x), _one_training_step(efficient, x)
    assert got["layers.1.norm1.num_batches_tracked"].item() == 1
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow  # a compile of the forward and backward graphs
def test_memory_efficient_training_step_compiled_leaves_the_plain_blocks_state() -> None:
    torch.manual_seed(0)
    plain = DenseLayer(4, growth_rate=2, bn_size=2)
    efficient = copy.deepcopy(plain)
    efficient.memory_efficient = True
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    expected = _one_training_step(plain, x)
    got = _one_training_step(efficient, x, compile=True)
    assert got["norm1.num_batches_tracked"].item() == 1
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5, msg=key)


def test_fusion_folds_the_dense_layers_second_norm_and_leaves_the_pre_activation_norms() -> None:
    layer = DenseLayer(6, growth_rate=4, bn_size=2).eval()
    report = blockzoo.explain_fusion(layer)
    assert report.folded == (("conv1", "norm2"),)
    assert report.unpaired == (("norm1", "not found right after a conv"),)
    with torch.no_grad():
        layer.norm2.running_mean.uniform_(-1, 1)
        layer.norm2.running_var.uniform_(0.5, 2)
        fused = blockzoo.fuse_conv_bn(layer)
        x = torch.randn(2, 6, 4, 4)
        torch.testing.assert_close(fused(x), layer(x))
    assert isinstance(fused.norm2, torch.nn.Identity)
    assert blockzoo.explain_fusion(Transition(6, 3)).folded == ()


def test_bottleneck_squeeze_excite_is_se_ratio_of_the_input_width() -> None:
    block = blockzoo.Bottleneck(32, 64, mid_channels=48, groups=6, se_ratio=0.25)
    se = block.branch[2]
    assert isinstance(se, blockzoo.SqueezeExcite)
    assert (se.fc1.in_channels, se.fc1.out_channels) == (48, 8)
    assert block(torch.randn(2, 32, 4, 4)).shape == (2, 64, 4, 4)
    with pytest.raises(ValueError, match=r"se_ratio must be .*Received: se_ratio=0"):
        blockzoo.Bottleneck(32, 64, se_ratio=0)
