import functools

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import UnknownNameError, list_layers, register_layer, resolve_layer
from blockzoo.layers import ChannelLayerNorm, GlobalPool, build_layer


def test_required_activations_are_registered() -> None:
    required = {
        "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "gelu_tanh", "silu", "mish",
        "hardswish", "hardsigmoid", "sigmoid", "tanh", "softplus", "prelu", "identity",
    }  # fmt: skip
    assert required <= set(list_layers("act"))
    assert isinstance(resolve_layer("act", "swish")(), nn.SiLU)
    gelu = resolve_layer("act", "gelu_tanh")()
    assert isinstance(gelu, nn.GELU)
    assert gelu.approximate == "tanh"


@pytest.mark.parametrize(
    ("name", "dims", "cls"),
    [
        ("batchnorm", 0, nn.BatchNorm1d),
        ("batchnorm", 1, nn.BatchNorm1d),
        ("batchnorm", 2, nn.BatchNorm2d),
        ("batchnorm", 3, nn.BatchNorm3d),
        ("instancenorm", 1, nn.InstanceNorm1d),
        ("instancenorm", 2, blockzoo.layers.InstanceNorm2d),
        ("instancenorm", 3, blockzoo.layers.InstanceNorm3d),
        ("layernorm", 0, nn.LayerNorm),
        ("layernorm", 2, ChannelLayerNorm),
        ("groupnorm", 2, nn.GroupNorm),
    ],
)
def test_norms_pick_the_class_for_the_spatial_dims(name: str, dims: int, cls: type[nn.Module]) -> None:
    layer = resolve_layer("norm", name, spatial_dims=dims)(16)
    assert type(layer) is cls


def test_groupnorm_default_groups_divide_the_channels() -> None:
    for channels, groups in [(64, 32), (16, 16), (24, 24), (40, 20), (7, 7)]:
        assert resolve_layer("norm", "groupnorm")(channels).num_groups == groups
    assert resolve_layer("norm", functools.partial(resolve_layer("norm", "groupnorm"), num_groups=4))(8).num_groups == 4


def test_channel_layernorm_normalises_channels_per_position() -> None:
    x = torch.randn(2, 6, 3, 5, dtype=torch.float64)
    ours = ChannelLayerNorm(6, dtype=torch.float64)
    with torch.no_grad():
        ours.weight.uniform_()
        ours.bias.uniform_()
    ref = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), ours.weight, ours.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(ours(x), ref)


def test_pooling_names() -> None:
    assert isinstance(resolve_layer("pool", "max", spatial_dims=1)(3), nn.MaxPool1d)
    assert resolve_layer("pool", "avg", spatial_dims=3)(2).kernel_size == 2
    assert resolve_layer("pool", "adaptive_max")().output_size == 1
    assert isinstance(resolve_layer("pool", "adaptive_avg")(), nn.AdaptiveAvgPool2d)
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(resolve_layer("pool", "global_avg")()(x), x.mean((2, 3)))
    torch.testing.assert_close(resolve_layer("pool", "global_max")()(x), x.amax((2, 3)))
    assert GlobalPool("avg", 3).output_shape((2, 3, 4, 4, 4)) == torch.Size([2, 3])
    with pytest.raises(ValueError, match=r"global pooling always pools to one value per channel\. Received: size=2"):
        resolve_layer("pool", "global_avg")(2)


def test_dropout_and_conv_names() -> None:
    assert isinstance(resolve_layer("dropout", "channel_dropout", spatial_dims=3)(0.1), nn.Dropout3d)
    assert resolve_layer("dropout", "dropout")(0.3).p == 0.3
    assert isinstance(resolve_layer("conv", "conv", spatial_dims=1)(2, 3, 3), nn.Conv1d)
    assert isinstance(resolve_layer("conv", "conv_transpose", spatial_dims=3)(2, 3, 3), nn.ConvTranspose3d)


def test_none_is_identity_and_callables_pass_through() -> None:
    assert resolve_layer("norm", None) is nn.Identity
    assert resolve_layer("act", nn.GELU) is nn.GELU


def test_unknown_names_and_kinds_suggest_close_matches() -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown norm layer 'batchnrom'\. Did you mean 'batchnorm'\?"):
        resolve_layer("norm", "batchnrom")
    with pytest.raises(UnknownNameError, match=r"Unknown layer kind 'activation'.*Received: kind='activation'"):
        list_layers("activation")  # type: ignore[arg-type]


def test_bad_specs_raise_type_errors_naming_the_argument() -> None:
    with pytest.raises(TypeError, match=r"act_layer must make a new module.*Received: act_layer=ReLU\(\)"):
        resolve_layer("act", nn.ReLU())
    with pytest.raises(TypeError, match=r"norm_layer must be a registered name.*Received: norm_layer=5 \(int\)"):
        resolve_layer("norm", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"gate_layer must return an nn.Module.*which returned int"):
        build_layer("act", lambda: 3, argname="gate_layer")
    with pytest.raises(ValueError, match=r"spatial_dims must be one of 0, 1, 2, 3\. Received: spatial_dims=4"):
        resolve_layer("norm", "batchnorm", spatial_dims=4)
    with pytest.raises(
        ValueError, match=r"instancenorm is defined for spatial_dims in \[1, 2, 3\]\. Received: spatial_dims=0"
    ):
        resolve_layer("norm", "instancenorm", spatial_dims=0)(4)


def test_register_layer_adds_a_name_and_refuses_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    from blockzoo.layers._factories import _REGISTRIES

    # registries are global: give this test its own copy so the name does not leak
    monkeypatch.setattr(_REGISTRIES["norm"], "_items", dict(_REGISTRIES["norm"]._items))

    @register_layer("norm", "test_rms_norm")
    def rms(num_features: int, *, spatial_dims: int = 2, **kwargs: object) -> nn.Module:
        return ChannelLayerNorm(num_features, **kwargs) if spatial_dims else nn.LayerNorm(num_features, **kwargs)  # type: ignore[arg-type]

    assert "test_rms_norm" in list_layers("norm")
    block = blockzoo.ConvNormAct(2, 4, norm_layer="test_rms_norm")
    assert isinstance(block.norm, ChannelLayerNorm)
    with pytest.raises(ValueError, match="already registered"):
        register_layer("norm", "test_rms_norm")(rms)
    with pytest.raises(ValueError, match="already registered"):
        register_layer("act", "relu")(nn.ReLU)


def test_build_layer_places_tensors() -> None:
    prelu = build_layer("act", "prelu", device="meta", dtype=torch.float64)
    assert prelu.weight.device.type == "meta"
    assert prelu.weight.dtype == torch.float64
    norm = build_layer("norm", "batchnorm", 4, device="meta")
    assert norm.weight.device.type == "meta"


def test_module_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"mode must be one of 'avg', 'max'\. Received: mode='mean'"):
        GlobalPool("mean")
    with pytest.raises(ValueError, match=r"spatial_dims must be one of 1, 2, 3\. Received: spatial_dims=0"):
        GlobalPool("avg", 0)
    with pytest.raises(ValueError, match=r"spatial_dims must be one of 1, 2, 3\. Received: spatial_dims=True"):
        GlobalPool("avg", True)  # a bool is not a rank (True == 1 slipped through before)
    with pytest.raises(TypeError, match=r"register_layer needs a callable factory\. Received: factory=3"):
        register_layer("act", "not_callable_demo")(3)  # type: ignore[arg-type]
    assert "not_callable_demo" not in list_layers("act")


def test_instance_norm_keeps_channels_last() -> None:
    x = torch.randn(2, 4, 5, 5).contiguous(memory_format=torch.channels_last)
    norm = resolve_layer("norm", "instancenorm")(4, affine=True)
    y = norm(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, nn.functional.instance_norm(x.contiguous(), weight=norm.weight, bias=norm.bias))
