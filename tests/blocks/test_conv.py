import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import ConvBlock, ConvNormAct, DepthwiseSeparableConv, InputError, UnknownNameError


def test_conv_norm_act_matches_the_same_layers_in_torch() -> None:
    block = ConvNormAct(3, 8, 3, stride=2).eval()
    ref = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()).eval()
    ref.load_state_dict({k.replace("conv.", "0.").replace("norm.", "1."): v for k, v in block.state_dict().items()})
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(block(x), ref(x), rtol=0, atol=0)


def test_state_dict_keys_are_public_api() -> None:
    assert list(ConvNormAct(3, 8).state_dict()) == [
        "conv.weight",
        "norm.weight",
        "norm.bias",
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
    ]
    assert list(ConvBlock(3, 8, num_convs=2, norm_layer=None).state_dict()) == [
        "convs.0.conv.weight",
        "convs.0.conv.bias",
        "convs.1.conv.weight",
        "convs.1.conv.bias",
    ]


@pytest.mark.parametrize(
    ("norm", "bias", "expected"),
    [("batchnorm", None, False), (None, None, True), ("batchnorm", True, True), (None, False, False)],
)
def test_bias_defaults_to_no_bias_with_a_norm(norm: str | None, bias: bool | None, expected: bool) -> None:
    assert (ConvNormAct(2, 4, norm_layer=norm, bias=bias).conv.bias is not None) is expected


@pytest.mark.parametrize(("kernel", "dilation"), [(1, 1), (3, 1), (5, 1), (3, 2), (7, 3)])
def test_default_padding_keeps_the_size_at_stride_one(kernel: int, dilation: int) -> None:
    block = ConvNormAct(2, 3, kernel, dilation=dilation)
    assert block(torch.randn(2, 2, 11, 13)).shape == (2, 3, 11, 13)


def test_pre_activation_order_normalises_the_input() -> None:
    block = ConvNormAct(4, 8, order="norm-act-conv")
    assert [n for n, _ in block.named_children()] == ["norm", "act", "conv"]
    assert block.norm.num_features == 4
    assert "order='norm-act-conv'" in repr(block)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(block(x), block.conv(block.act(block.norm(x))))


def test_spatial_dims_one_and_three() -> None:
    assert isinstance(ConvNormAct(2, 4, spatial_dims=1).conv, nn.Conv1d)
    block = ConvNormAct(2, 4, (3, 1, 3), spatial_dims=3)
    assert block(torch.randn(2, 2, 4, 4, 4)).shape == (2, 4, 4, 4, 4)


def test_device_and_dtype_reach_every_sub_layer() -> None:
    block = ConvBlock(3, 8, act_layer="prelu", device="meta", dtype=torch.float64)
    tensors = [*block.parameters(), *block.buffers()]
    assert all(t.device.type == "meta" for t in tensors)
    assert all(t.dtype == torch.float64 for t in tensors if t.is_floating_point())


def test_conv_block_is_the_course_stage() -> None:
    stage = ConvBlock(3, 16, num_convs=2, drop_rate=0.25)
    assert [type(m).__name__ for m in stage.convs] == ["ConvNormAct", "ConvNormAct"]
    assert isinstance(stage.pool, nn.MaxPool2d)
    assert isinstance(stage.drop, nn.Dropout)
    assert stage.drop.p == 0.25
    assert stage(torch.randn(2, 3, 32, 32)).shape == (2, 16, 16, 16)
    assert ConvBlock(3, 16, pool_layer=None)(torch.randn(2, 3, 8, 8)).shape == (2, 16, 8, 8)


def test_depthwise_separable_structure() -> None:
    block = DepthwiseSeparableConv(8, 16, 5, pw_act_layer=None)
    assert block.dw.conv.groups == 8
    assert block.dw.conv.kernel_size == (5, 5)
    assert block.pw.conv.kernel_size == (1, 1)
    assert isinstance(block.pw.act, nn.Identity)


# --- bad input ------------------------------------------------------------------------


def test_wrong_channel_count() -> None:
    with pytest.raises(
        InputError,
        match=r"(?s)ConvNormAct expected input of shape \[N, 3, H, W\], received \[2, 4, 8, 8\] \(torch.float32\).*Hint: the input has 4 channels where 3 were expected",
    ):
        ConvNormAct(3, 8)(torch.randn(2, 4, 8, 8))


def test_wrong_rank_suggests_the_batch_dimension() -> None:
    with pytest.raises(
        InputError, match=r"(?s)ConvBlock expected input of shape \[N, 3, H, W\], received \[3, 8, 8\].*unsqueeze\(0\)"
    ):
        ConvBlock(3, 8)(torch.randn(3, 8, 8))
    with pytest.raises(InputError, match=r"expected 4 dimensions, received 2"):
        ConvBlock(3, 8)(torch.randn(3, 8))


def test_nhwc_tensor_gets_a_channels_last_hint() -> None:
    with pytest.raises(
        InputError,
        match=r"(?s)DepthwiseSeparableConv expected input of shape \[N, 3, H, W\], received \[1, 32, 32, 3\].*looks channels-last.*x\.permute\(0, 3, 1, 2\)",
    ):
        DepthwiseSeparableConv(3, 8)(torch.randn(1, 32, 32, 3))
    with pytest.raises(InputError, match=r"x\.permute\(0, 4, 1, 2, 3\)"):
        ConvNormAct(3, 8, spatial_dims=3)(torch.randn(1, 4, 4, 4, 3))


def test_integer_tensor() -> None:
    with pytest.raises(InputError, match=r"(?s)received \[1, 3, 8, 8\] \(torch.uint8\).*x\.float\(\) / 255"):
        ConvNormAct(3, 8)(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_spatial_size_too_small_for_the_pooling() -> None:
    with pytest.raises(
        InputError,
        match=r"(?s)ConvBlock expected input of shape \[N, 3, H, W\], received \[2, 3, 1, 5\].*spatial size after the convs, \[1, 5\], is smaller than the pooling window 2",
    ) as info:
        ConvBlock(3, 8)(torch.randn(2, 3, 1, 5))
    assert isinstance(info.value.__cause__, RuntimeError)  # torch's own error, kept
    with pytest.raises(InputError, match="smaller than the pooling window 3"):
        ConvBlock(3, 8, pool_size=3).output_shape((2, 3, 2, 2))


def test_a_padded_pool_takes_a_map_as_small_as_its_output_allows_in_forward_and_output_shape() -> None:
    # a 3x3 window padded by 1 gives a 1x1 output from a 2x2 map: no error in either; a 0x0 map is refused by both
    block = ConvBlock(3, 4, pool_layer=lambda k: nn.MaxPool2d(k, padding=1), pool_size=3)
    x = torch.randn(2, 3, 2, 2)
    assert block(x).shape == block.output_shape(x.shape) == (2, 4, 1, 1)
    assert ConvBlock(3, 4, pool_size=3).output_shape((2, 3, 3, 3)) == (2, 4, 1, 1)
    with pytest.raises(InputError, match="smaller than the pooling window 3"):
        ConvBlock(3, 4, pool_size=3).output_shape((2, 3, 2, 3))


def test_a_stride_one_pool_with_no_position_left_is_refused_by_forward_and_output_shape() -> None:
    block = ConvBlock(3, 4, pool_layer=lambda k: nn.MaxPool2d(k, stride=1), pool_size=3)
    with pytest.raises(InputError, match="smaller than the pooling window 3"):
        block.output_shape((2, 3, 1, 1))
    with pytest.raises(InputError, match="smaller than the pooling window 3"):
        block(torch.randn(2, 3, 1, 1))


def test_output_shape_validates_the_layout() -> None:
    with pytest.raises(
        InputError, match=r"ConvNormAct expected input of shape \[N, 3, H, W\], received \[2, 5, 8, 8\]\."
    ):
        ConvNormAct(3, 8).output_shape((2, 5, 8, 8))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"in_channels": 0}, ValueError, r"in_channels must be a positive int\. Received: in_channels=0"),
        ({"out_channels": -3}, ValueError, r"out_channels must be a positive int\. Received: out_channels=-3"),
        ({"in_channels": 2.0}, ValueError, r"in_channels must be a positive int\. Received: in_channels=2\.0"),
        (
            {"groups": 3},
            ValueError,
            r"groups must divide both in_channels \(4\) and out_channels \(8\)\. Received: groups=3",
        ),
        (
            {"kernel_size": (3, 3, 3)},
            ValueError,
            r"kernel_size must be an int >= 1 or a sequence of 2 such ints\. Received: kernel_size=\(3, 3, 3\)",
        ),
        ({"stride": 0}, ValueError, r"stride must be an int >= 1.*Received: stride=0"),
        ({"padding": -1}, ValueError, r"padding must be an int >= 0.*Received: padding=-1"),
        (
            {"order": "act-conv"},
            ValueError,
            r"order must be one of 'conv-norm-act', 'norm-act-conv'\. Received: order='act-conv'",
        ),
        ({"spatial_dims": 4}, ValueError, r"spatial_dims must be one of 1, 2, 3\. Received: spatial_dims=4"),
        ({"bias": "yes"}, TypeError, r"bias must be True, False or None\. Received: bias='yes'"),
        ({"norm_layer": "batchnorn"}, UnknownNameError, r"Unknown norm layer 'batchnorn'\. Did you mean 'batchnorm'\?"),
        ({"act_layer": "gleu"}, UnknownNameError, r"Unknown act layer 'gleu'\. Did you mean 'gelu'"),
        ({"act_layer": nn.ReLU()}, TypeError, r"act_layer must make a new module each time"),
        ({"nrom_layer": None}, TypeError, r"unexpected keyword argument 'nrom_layer'"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    args = {"in_channels": 4, "out_channels": 8, **kwargs}
    with pytest.raises(error, match=message):
        ConvNormAct(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop_rate": 1.0}, r"drop_rate must be a number in \[0, 1\)\. Received: drop_rate=1\.0"),
        ({"drop_rate": -0.1}, r"drop_rate must be a number in \[0, 1\)\. Received: drop_rate=-0\.1"),
        ({"num_convs": 0}, r"num_convs must be a positive int\. Received: num_convs=0"),
        ({"pool_size": 0}, r"pool_size must be a positive int\. Received: pool_size=0"),
        ({"pool_layer": "maxx"}, r"Unknown pool layer 'maxx'\. Did you mean 'max'"),
    ],
)
def test_conv_block_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConvBlock(3, 8, **kwargs)  # type: ignore[arg-type]


def test_positional_arguments_stop_after_kernel_size() -> None:
    with pytest.raises(TypeError, match="positional argument"):
        ConvNormAct(3, 8, 3, 2)  # type: ignore[misc]


def test_reset_parameters_reinitialises() -> None:
    block = ConvBlock(3, 8)
    with torch.no_grad():
        for p in block.parameters():
            p.fill_(7.0)
    block.reset_parameters()
    assert not torch.all(block.convs[0].conv.weight == 7.0)
    assert torch.all(block.convs[0].norm.weight == 1.0)


def test_top_level_names() -> None:
    for name in [
        "ConvNormAct",
        "ConvBlock",
        "MLP",
        "ClassifierHead",
        "DropPath",
        "DropBlock",
        "SqueezeExcite",
        "DepthwiseSeparableConv",
        "Block",
    ]:
        assert getattr(blockzoo, name) is getattr(blockzoo.blocks, name)


def test_replacing_a_sub_layer_changes_forward() -> None:
    block = ConvNormAct(2, 4, act_layer=None).eval()
    x = torch.randn(2, 2, 5, 5)
    block.act = nn.Tanh()
    torch.testing.assert_close(block(x), torch.tanh(block.norm(block.conv(x))))
    block.norm = nn.Identity()  # fusing a norm into the conv leaves an identity behind
    torch.testing.assert_close(block(x), torch.tanh(block.conv(x)))
    del block.act
    with pytest.raises(AttributeError, match=r"ConvNormAct has no 'act' sub-layer; assign a module to it"):
        block(x)
    clone = __import__("copy").deepcopy(ConvBlock(2, 4))
    clone.pool = nn.AvgPool2d(2)
    y = torch.randn(2, 2, 4, 4)
    torch.testing.assert_close(clone.eval()(y), nn.functional.avg_pool2d(clone.convs(y), 2))
