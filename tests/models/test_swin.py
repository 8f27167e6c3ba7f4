"""The Swin Transformers: torchvision's outputs on odd map sizes, and the library's tools on them."""

import pytest
import torch

import blockzoo
from blockzoo import DropPath, SwinBlock, create_model
from blockzoo.init import init_report
from blockzoo.models import load_torchvision_weights, torchvision_to_blockzoo
from blockzoo.optim import param_groups
from blockzoo.regularization import attach_stochastic_depth

torchvision = pytest.importorskip("torchvision")


def test_swin_t_equals_torchvision_where_the_merging_layers_pad_odd_maps() -> None:
    # 100 x 68: a 25 x 17 map after the patches, padded to whole windows in every stage and to even sides before
    # every merging layer (25 x 17 -> 13 x 9 -> 7 x 5 -> 4 x 3)
    torch.manual_seed(0)
    theirs = torchvision.models.swin_t(num_classes=10).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.randn_like(p), alpha=0.02)  # away from the zero biases and unit norm scales
    ours = load_torchvision_weights(
        create_model("swin_t", num_classes=10, device="meta").to_empty(device="cpu"), theirs.state_dict()
    )
    x = torch.randn(1, 3, 100, 68)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs(x), rtol=0, atol=1e-5)
    assert ours.features.stage3[1].attention.branch.attn.shift_size == 3


def test_conversion_skips_torchvisions_relative_position_index_only() -> None:
    with torch.device("meta"):
        theirs = torchvision.models.swin_t().state_dict()
    converted = torchvision_to_blockzoo(create_model("swin_t", device="meta"), theirs)
    index_keys = [k for k in theirs if k.endswith("relative_position_index")]
    assert len(index_keys) == 12  # one per block
    assert len(converted) == len(theirs) - 12
    # torchvision registers each merging layer's reduction before its norm; here the norm runs (and comes) first
    assert converted["features.down2.reduction.weight"] is theirs["features.2.reduction.weight"]
    assert converted["features.down2.norm.weight"] is theirs["features.2.norm.weight"]
    assert (
        converted["features.stage1.1.attention.branch.attn.relative_position_bias_table"]
        is (theirs["features.1.1.attn.relative_position_bias_table"])
    )


@pytest.mark.parametrize("name", ["swin_t", "swin_s", "swin_b"])
def test_swin_drop_path_defaults_equal_torchvisions_stochastic_depth(name: str) -> None:
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)()
    expected = [m.p for m in theirs.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    blocks = [m for m in create_model(name, device="meta").modules() if isinstance(m, SwinBlock)]
    assert [b.attention.drop_path.p for b in blocks] == pytest.approx(expected, abs=1e-12)
    assert [b.feedforward.drop_path.p for b in blocks] == pytest.approx(expected, abs=1e-12)
    # alternating windows: unshifted, then shifted by half a window
    shifts = [b.attention.branch.attn.shift_size for b in blocks]
    assert shifts[:4] == [0, 3, 0, 3]


def test_stochastic_depth_zero_init_and_layer_decay_cover_swin() -> None:
    model = create_model("swin_t", device="meta", drop_path_rate=0.0)
    assert {m.p for m in model.modules() if isinstance(m, DropPath)} == {0.0}
    handle = attach_stochastic_depth(model, 0.3)
    assert len(handle.targets) == 2 * 12  # each block's attention half and MLP half
    assert handle.targets[:2] == ["features.stage1.0.attention", "features.stage1.0.feedforward"]
    blockzoo.zero_init_last_(model)
    zeroed = [r.name for r in init_report(model).rows if r.initializer == "zeros (zero_init_last_)"]
    assert len(zeroed) == 2 * 2 * 12  # the last linear layer of every half, weight and bias
    assert all(n.endswith(("attn.proj.weight", "attn.proj.bias", "mlp.out.weight", "mlp.out.bias")) for n in zeroed)
    groups, _ = param_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    lrs = {n: (g["lr"], g["weight_decay"]) for g in groups for n, _ in g["params"]}
    # patch embedding 0, stage s (and the merging layer into it) s, the final norm and the head 5
    assert lrs["head.fc.weight"] == (1.0, 0.05)
    assert lrs["features.norm.weight"] == (1.0, 0.0)
    assert lrs["features.stage4.1.attention.branch.attn.qkv.weight"] == (0.5, 0.05)
    assert lrs["features.down4.reduction.weight"] == (0.5, 0.05)
    assert lrs["features.patch_embed.proj.weight"] == (0.5**5, 0.05)
    # the relative position bias is an embedding: no weight decay
    assert lrs["features.stage1.0.attention.branch.attn.relative_position_bias_table"] == (0.5**4, 0.0)


def test_swin_takes_zero_init_last_and_summary_shows_the_blocks() -> None:
    model = create_model("swin_t", num_classes=3, zero_init_last=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # every block starts as the identity: the features are the normalised patches, merged
        features = model.eval().forward_features(x)
        expected = model.features.patch_embed(x)
        for name in ("down2", "down3", "down4", "norm"):
            expected = model.features.get_submodule(name)(expected)
        torch.testing.assert_close(features, expected)
    text = str(blockzoo.summary(create_model("swin_t", num_classes=3, device="meta"), (1, 3, 64, 64), depth=3))
    assert "SwinBlock" in text
    assert "PatchMerging" in text
