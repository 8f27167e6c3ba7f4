"""EfficientNet v1/v2, MobileNet v3 and MNASNet: torchvision's defaults, and the library's tools on them."""

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import FusedMBConv, InvertedResidual, MBConv, create_model
from blockzoo.blocks import ResidualBlock
from blockzoo.regularization import attach_stochastic_depth

torchvision = pytest.importorskip("torchvision")


def blocks(model: nn.Module) -> list[ResidualBlock]:
    return [m for m in model.modules() if isinstance(m, ResidualBlock)]


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_v2_s"])
def test_stochastic_depth_rates_are_torchvisions(name: str) -> None:
    with torch.device("meta"):  # structure only: skip both initialisations
        theirs = getattr(torchvision.models, name)()
        ours = blocks(create_model(name))
    their_rates = [m.stochastic_depth.p for m in theirs.modules() if hasattr(m, "use_res_connect")]
    their_residual = [m.use_res_connect for m in theirs.modules() if hasattr(m, "use_res_connect")]
    assert [b.has_shortcut for b in ours] == their_residual
    # torchvision keeps a rate on every block but uses it only with the shortcut; ours is 0 elsewhere
    assert [b.drop_path.p for b in ours] == [p if r else 0.0 for p, r in zip(their_rates, their_residual, strict=True)]
    assert isinstance(ours[-1], MBConv)
    if name.endswith("v2_s"):
        assert isinstance(ours[0], FusedMBConv)


@pytest.mark.parametrize(
    "name", ["efficientnet_b0", "efficientnet_b5", "efficientnet_v2_s", "mobilenet_v3_small", "mnasnet1_3"]
)
def test_default_dropout_and_norms_are_torchvisions(name: str) -> None:
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)()
        ours = create_model(name)
    their_drop = [m.p for m in theirs.modules() if isinstance(m, nn.Dropout)]
    our_drop = [m.p for m in ours.modules() if isinstance(m, nn.Dropout)]
    assert our_drop == their_drop
    their_norms = [(m.eps, m.momentum) for m in theirs.modules() if isinstance(m, nn.BatchNorm2d)]
    our_norms = [(m.eps, m.momentum) for m in ours.modules() if isinstance(m, nn.BatchNorm2d)]
    assert our_norms == their_norms


def test_input_sizes_are_torchvisions_crops() -> None:
    for name in ["efficientnet_b0", "efficientnet_b7", "efficientnet_v2_m"]:
        crop = torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size[0]
        assert blockzoo.model_info(name).input_size == (3, crop, crop), name


def test_mobilenet_v3_blocks_use_hard_swish_and_a_hard_sigmoid_gate() -> None:
    model = create_model("mobilenet_v3_large", device="meta")
    mbconvs = [m for m in model.modules() if isinstance(m, MBConv)]
    assert len(mbconvs) == 15
    gates = {type(m.gate) for m in model.modules() if isinstance(m, blockzoo.SqueezeExcite)}
    assert gates == {nn.Hardsigmoid}
    assert isinstance(model.head.hidden.layers[0].act, nn.Hardswish)
    assert model.num_features == 1280
    assert [len(model.features.get_submodule(f"stage{i}")) for i in range(1, 6)] == [1, 2, 3, 6, 3]


def test_mnasnet_is_built_from_inverted_residuals() -> None:
    model = create_model("mnasnet0_5", device="meta")
    assert sum(isinstance(m, InvertedResidual) for m in model.modules()) == 16
    assert model.features.stem.separable.pw.conv.out_channels == 8  # 16 * 0.5 rounded to a multiple of 8


def test_stochastic_depth_zero_init_and_layer_decay_know_the_blocks() -> None:
    model = create_model("mobilenet_v3_small")
    handle = attach_stochastic_depth(model, 0.2)
    assert len(handle.targets) == sum(b.has_shortcut for b in blocks(model)) == 6
    handle.remove()
    blockzoo.zero_init_last_(model)
    model.eval()
    block = model.features.stage3[1]  # 40 -> 40, stride 1: starts as its input
    x = torch.randn(1, 40, 4, 4)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    depths = create_model("efficientnet_b0", device="meta").param_depths()
    assert depths["features.stem.conv.weight"] == 0
    assert depths["features.stage7.0.branch.0.conv.weight"] == 7
    assert depths["features.last.conv.weight"] == 8
    assert depths["head.fc.weight"] == 9


@pytest.mark.parametrize(("name", "count"), [("mnasnet0_5", 16), ("mobilenet_v3_small", 11)])
def test_drop_path_rate_option_and_its_check(name: str, count: int) -> None:
    # torchvision's builders have no stochastic depth: the rate rises linearly from 0 to drop_path_rate over all
    # the inverted residuals, as in torchvision's EfficientNet, and is used only by those with a shortcut
    ours = blocks(create_model(name, drop_path_rate=0.1, device="meta"))
    assert len(ours) == count
    linear = [0.1 * i / (count - 1) for i in range(count)]
    expected = [r if b.has_shortcut else 0.0 for r, b in zip(linear, ours, strict=True)]
    assert [b.drop_path.p for b in ours] == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"drop_path_rate must be .*Received: drop_path_rate=1\.5"):
        create_model("efficientnet_b0", drop_path_rate=1.5)


def test_summary_shows_the_blocks() -> None:
    model = nn.Sequential(FusedMBConv(8, 16, stride=2), MBConv(16, 16))
    rows = {row.name: row for row in blockzoo.summary(model, (1, 8, 16, 16), depth=3).rows}
    assert (rows["0"].type, rows["0"].output_shape, rows["0"].params) == (
        "FusedMBConv",
        (1, 16, 8, 8),
        8 * 32 * 9 + 2 * 32 + 32 * 16 + 2 * 16,
    )
    assert (rows["1"].type, rows["1"].output_shape) == ("MBConv", (1, 16, 8, 8))
    assert rows["1.branch.2"].type == "SqueezeExcite"
