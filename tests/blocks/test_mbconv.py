"""MBConv and FusedMBConv: torchvision's blocks given the same weights, and the residual protocol."""

import functools

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import FusedMBConv, InvertedResidual, MBConv

efficientnet = pytest.importorskip("torchvision.models.efficientnet")
mobilenetv3 = pytest.importorskip("torchvision.models.mobilenetv3")


def randomise_norms(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def assert_same_block(ours: nn.Module, theirs: nn.Module, in_channels: int) -> None:
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    randomise_norms(theirs)
    blockzoo.models.load_torchvision_weights(ours, theirs.state_dict())
    ours.eval()
    theirs.eval()
    x = torch.randn(2, in_channels, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("expand", "kernel", "stride", "c_in", "c_out"),
    [(1, 3, 1, 32, 16), (6, 5, 2, 24, 40), (6, 3, 1, 80, 80)],
)
def test_mbconv_equals_torchvision_efficientnet_block(
    expand: int, kernel: int, stride: int, c_in: int, c_out: int
) -> None:
    cnf = efficientnet.MBConvConfig(expand, kernel, stride, c_in, c_out, 1)
    theirs = efficientnet.MBConv(cnf, 0.0, nn.BatchNorm2d)
    ours = MBConv(c_in, c_out, kernel, stride=stride, expand_ratio=expand)
    assert ours.has_shortcut == theirs.use_res_connect
    assert_same_block(ours, theirs, c_in)


@pytest.mark.parametrize(
    ("c_in", "kernel", "mid", "c_out", "se", "act", "stride"),
    [(16, 3, 16, 16, True, "RE", 2), (24, 3, 88, 24, False, "RE", 1), (40, 5, 240, 40, True, "HS", 1)],
)
def test_mbconv_equals_torchvision_mobilenet_v3_block(
    c_in: int, kernel: int, mid: int, c_out: int, se: bool, act: str, stride: int
) -> None:
    cnf = mobilenetv3.InvertedResidualConfig(c_in, kernel, mid, c_out, se, act, stride, 1, 1.0)
    theirs = mobilenetv3.InvertedResidual(cnf, nn.BatchNorm2d)
    ours = MBConv(
        c_in,
        c_out,
        kernel,
        stride=stride,
        mid_channels=mid,
        se_ratio=None,
        se_channels=max(8, (mid // 4 + 4) // 8 * 8) if se else None,  # torchvision's _make_divisible(mid // 4, 8)
        se_act_layer="relu",
        se_gate_layer="hardsigmoid",
        act_layer="hardswish" if act == "HS" else "relu",
    )
    assert_same_block(ours, theirs, c_in)


@pytest.mark.parametrize(("expand", "stride", "c_in", "c_out"), [(1, 1, 24, 24), (4, 2, 24, 48), (4, 1, 48, 48)])
def test_fused_mbconv_equals_torchvision_block(expand: int, stride: int, c_in: int, c_out: int) -> None:
    cnf = efficientnet.FusedMBConvConfig(expand, 3, stride, c_in, c_out, 1)
    theirs = efficientnet.FusedMBConv(cnf, 0.0, nn.BatchNorm2d)
    ours = FusedMBConv(c_in, c_out, stride=stride, expand_ratio=expand)
    assert len(ours.branch) == (1 if expand == 1 else 2)
    assert_same_block(ours, theirs, c_in)


@pytest.mark.parametrize(
    "block",
    [
        functools.partial(MBConv, 8, 8),
        functools.partial(MBConv, 8, 8, expand_ratio=1),
        functools.partial(FusedMBConv, 8, 8),
        functools.partial(FusedMBConv, 8, 8, expand_ratio=1),
    ],
)
def test_zero_init_last_starts_the_block_as_its_input(block: functools.partial[nn.Module]) -> None:
    x = torch.randn(2, 8, 6, 6)
    module = block().zero_init_last_().eval()
    torch.testing.assert_close(module(x), x, rtol=0, atol=0)


def test_blocks_that_change_the_shape_have_no_shortcut_and_no_drop_path() -> None:
    for block in (MBConv(8, 16, drop_path_rate=0.2), FusedMBConv(8, 8, stride=2, drop_path_rate=0.2)):
        assert not block.has_shortcut
        assert block.drop_path.p == 0.0
        x = torch.randn(1, 8, 8, 8)
        block.eval()
        torch.testing.assert_close(block(x), block.branch(x))
    assert MBConv(8, 8, drop_path_rate=0.2).drop_path.p == 0.2


def test_squeeze_excite_width_and_options() -> None:
    assert MBConv(40, 80, se_ratio=0.25).branch[2].fc1.out_channels == 10  # of the input, not the expanded width
    assert MBConv(6, 6, se_ratio=0.1).branch[2].fc1.out_channels == 1  # at least one channel
    assert [type(m).__name__ for m in MBConv(8, 8, se_ratio=None).branch] == ["ConvNormAct"] * 3
    block = MBConv(8, 8, mid_channels=20, se_channels=3, se_act_layer="relu", se_gate_layer="hardsigmoid")
    se = block.branch[2]
    assert (se.fc1.in_channels, se.fc1.out_channels) == (20, 3)
    assert isinstance(se.act, nn.ReLU)
    assert isinstance(se.gate, nn.Hardsigmoid)


def test_mbconv_is_an_inverted_residual_with_efficientnets_defaults() -> None:
    # MBConv's se_ratio is of the input width, InvertedResidual's of the hidden width: 0.25 of 8, of 48
    assert MBConv(8, 8, se_ratio=0.25).branch[2].fc1.out_channels == 2
    assert InvertedResidual(8, 8, se_ratio=0.25).branch[2].fc1.out_channels == 12
    torch.manual_seed(0)
    ours = MBConv(8, 8, 5, mid_channels=20, se_channels=3, se_act_layer="relu", se_gate_layer="hardsigmoid").eval()
    torch.manual_seed(0)
    plain = InvertedResidual(
        8, 8, 5, mid_channels=20, se_channels=3, se_act_layer="relu", se_gate_layer="hardsigmoid", act_layer="silu"
    ).eval()
    assert isinstance(ours, InvertedResidual)
    assert list(ours.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(ours(x), plain(x), rtol=0, atol=0)


def test_inverted_residuals_defaults_are_unchanged_by_the_new_options() -> None:
    block = InvertedResidual(8, 8, se_ratio=0.5)
    se = block.branch[2]
    assert (se.fc1.in_channels, se.fc1.out_channels) == (48, 24)
    assert (type(se.act), type(se.gate), type(block.branch[0].act)) == (nn.ReLU, nn.Sigmoid, nn.ReLU6)
    assert [type(m).__name__ for m in InvertedResidual(8, 8).branch] == ["ConvNormAct"] * 3
    with pytest.raises(ValueError, match=r"se_channels must be a positive int.*Received: se_channels=0"):
        InvertedResidual(8, 8, se_channels=0)
    with pytest.raises(ValueError, match=r"mid_channels must be a positive int.*Received: mid_channels=-1"):
        InvertedResidual(8, 8, mid_channels=-1)


def test_stochastic_depth_and_fusion_find_the_blocks() -> None:
    model = nn.Sequential(MBConv(8, 8), FusedMBConv(8, 8), MBConv(8, 16))
    handle = blockzoo.regularization.attach_stochastic_depth(model, 0.3)
    assert handle.targets == ["0", "1"]
    assert (model[0].drop_path.p, model[1].drop_path.p) == (0.0, 0.3)
    handle.remove()
    randomise_norms(model)
    model.eval()
    report = blockzoo.explain_fusion(model)
    assert not report.skipped
    assert len(report.folded) == 3 + 2 + 3  # every conv-norm pair: expand, depthwise, project (and fused, project)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(blockzoo.fuse_conv_bn(model)(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: MBConv(8, 8, expand_ratio=0.5), r"expand_ratio must be .*1.*Received: expand_ratio=0\.5"),
        (lambda: MBConv(8, 8, mid_channels=0), r"mid_channels must be a positive int.*Received: mid_channels=0"),
        (lambda: MBConv(8, 8, se_ratio=1.5), r"se_ratio must be .*Received: se_ratio=1\.5"),
        (lambda: MBConv(8, 8, se_channels=0), r"se_channels must be a positive int.*Received: se_channels=0"),
        (lambda: FusedMBConv(8, 8, stride=0), r"stride must be a positive int.*Received: stride=0"),
        (lambda: FusedMBConv(0, 8), r"in_channels must be a positive int.*Received: in_channels=0"),
    ],
)
def test_bad_options_raise_with_the_argument_named(factory: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()  # type: ignore[operator]
