"""DenseNet, RegNet, ShuffleNet v2, SqueezeNet and AlexNet: their layouts and how the library's tools see them."""

from __future__ import annotations

import math

import pytest
import torch

import blockzoo
from blockzoo import create_model
from blockzoo.models._regnet import regnet_stages
from blockzoo.regularization import attach_stochastic_depth


def test_regnet_stage_widths_follow_the_quantised_linear_rule() -> None:
    # Radosavovic et al. 2020, appendix: RegNetX-400MF has depths 1, 2, 7, 12 and widths 32, 64, 160, 400
    assert [(w, d) for w, d, _ in regnet_stages(22, 24, 24.48, 2.54, 16)] == [(32, 1), (64, 2), (160, 7), (400, 12)]
    # RegNetY-400MF: depths 1, 3, 6, 6; widths 48, 104, 208, 440; group width 8
    assert regnet_stages(16, 48, 27.89, 2.09, 8) == [(48, 1, 8), (104, 3, 8), (208, 6, 8), (440, 6, 8)]


def test_regnet_conversion_puts_each_shortcut_before_its_branch_as_torchvision_does() -> None:
    model = create_model("regnet_x_400mf", device="meta")
    order = model.torchvision_key_order()
    assert sorted(order) == sorted(model.state_dict())
    shortcut = sum(k.startswith("features.stage1.0.shortcut.") for k in order)
    first = order.index("features.stage1.0.shortcut.conv.weight")
    assert order[first + shortcut] == "features.stage1.0.branch.0.conv.weight"
    torchvision = pytest.importorskip("torchvision")
    theirs = list(torchvision.models.regnet_x_400mf().state_dict().items())
    ours = model.state_dict()
    # paired in this order, every shape agrees with torchvision's tensor at the same place
    assert [tuple(ours[k].shape) for k in order] == [tuple(v.shape) for _, v in theirs]


def test_regnet_residual_tools_and_stage_depths() -> None:
    model = create_model("regnet_y_400mf", drop_path_rate=0.1, zero_init_last=True)
    blocks = [m for m in model.modules() if isinstance(m, blockzoo.Bottleneck)]
    assert len(blocks) == 16
    assert blocks[0].drop_path.p == 0.0
    assert math.isclose(blocks[-1].drop_path.p, 0.1)
    assert all(not b.branch[-1].norm.weight.any() for b in blocks)
    assert all(isinstance(b.branch[2], blockzoo.SqueezeExcite) for b in blocks)
    # stochastic depth goes to the blocks whose shortcut keeps the shape: all but the first of each of the 4 stages
    handle = attach_stochastic_depth(create_model("regnet_x_400mf"), 0.2)
    assert len(handle.targets) == 22 - 4
    depths = model.param_depths()
    assert depths["features.stem.conv.weight"] == 0
    assert depths["features.stage4.5.branch.2.fc1.weight"] == 4
    assert depths["head.fc.weight"] == 5


def test_densenet_layout_and_stage_depths() -> None:
    model = create_model("densenet121", device="meta")
    stages = [name for name, _ in model.features.named_children()]
    assert stages == ["stem", "stage1", "stage2", "stage3", "stage4"]
    widths = [model.features.get_submodule(f"stage{s}.block").out_channels for s in range(1, 5)]
    # 64 + 6 * 32 = 256, halved to 128; 128 + 12 * 32 = 512 -> 256; 256 + 24 * 32 = 1024 -> 512; 512 + 16 * 32
    assert widths == [256, 512, 1024, 1024]
    assert model.num_features == 1024
    depths = model.param_depths()
    assert depths["features.stage2.transition.conv.weight"] == 2
    assert depths["features.stage4.norm.weight"] == 4
    with pytest.raises(ValueError, match=r"has no residual block"):
        blockzoo.zero_init_last_(model)  # DenseNet has no residual sums: nothing to zero
    efficient = create_model("densenet121", memory_efficient=True, device="meta")
    assert all(layer.memory_efficient for layer in efficient.modules() if isinstance(layer, blockzoo.DenseLayer))


def test_fusion_in_densenet_folds_the_stem_and_each_bottleneck() -> None:
    report = blockzoo.explain_fusion(create_model("densenet121", device="meta"))
    layers = 6 + 12 + 24 + 16
    assert len(report.folded) == 1 + layers
    assert not report.skipped
    # each layer's first norm, the 3 transitions' norms and the final norm follow a concatenation
    assert len(report.unpaired) == layers + 3 + 1


@pytest.mark.parametrize("name", ["densenet121", "shufflenet_v2_x0_5", "regnet_y_400mf", "squeezenet1_1"])
def test_fused_model_computes_the_same(name: str) -> None:
    model = create_model(name, num_classes=5).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
        fused = blockzoo.fuse_conv_bn(model)
        x = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(fused(x), model(x), atol=1e-4, rtol=1e-4)
    report = blockzoo.explain_fusion(model)
    if name != "densenet121":  # every norm of these follows a conv
        assert not report.unpaired
        assert not report.skipped


def test_summary_shows_the_new_blocks() -> None:
    text = str(blockzoo.summary(create_model("shufflenet_v2_x0_5"), (1, 3, 64, 64), depth=3))
    assert "ShuffleUnit" in text
    text = str(blockzoo.summary(create_model("squeezenet1_1"), (1, 3, 64, 64), depth=2))
    assert "Fire" in text
    assert "ConvClassifierHead" in text


def test_squeezenet_head_reset_and_pre_logits() -> None:
    model = create_model("squeezenet1_1", num_classes=4).eval()
    x = torch.randn(2, 3, 64, 64)
    feats = model.forward_features(x)
    assert feats.shape == (2, 512, 3, 3)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 512)
    model.reset_classifier(0)
    assert isinstance(model.head.act, torch.nn.Identity)
    with torch.no_grad():
        torch.testing.assert_close(model(x), feats.mean((2, 3)))
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
