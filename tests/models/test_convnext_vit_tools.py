"""The library's tools on the ConvNeXt and ViT families: stochastic depth, zero-init, layer decay, fusion."""

import pytest
import torch

import blockzoo
from blockzoo import ConvNeXtBlock, DropPath, TransformerBlock, create_model
from blockzoo.init import init_report
from blockzoo.optim import param_groups
from blockzoo.regularization import attach_stochastic_depth


@pytest.mark.parametrize("name", ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"])
def test_convnext_drop_path_defaults_equal_torchvisions_stochastic_depth(name: str) -> None:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)()
    expected = [m.p for m in theirs.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    ours = [m.drop_path.p for m in create_model(name, device="meta").modules() if isinstance(m, ConvNeXtBlock)]
    assert ours == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ["vit_b_16", "vit_l_32"])
def test_vit_has_no_stochastic_depth_by_default_as_torchvision(name: str) -> None:
    # torchvision's VisionTransformer has no stochastic_depth_prob: no block drops its branches
    model = create_model(name, device="meta")
    assert {m.p for m in model.modules() if isinstance(m, DropPath)} == {0.0}
    model = create_model(name, device="meta", drop_path_rate=0.2)
    assert max(m.p for m in model.modules() if isinstance(m, DropPath)) == pytest.approx(0.2)


def test_stochastic_depth_and_zero_init_cover_convnext_and_vit() -> None:
    convnext = create_model("convnext_tiny", device="meta")
    handle = attach_stochastic_depth(convnext, 0.3)
    assert len(handle.targets) == 3 + 3 + 9 + 3  # every ConvNeXt block keeps the shape
    assert handle.targets[-1] == "features.stage4.2"
    assert convnext.features.stage4[2].drop_path.p == pytest.approx(0.3)
    vit = create_model("vit_b_32", device="meta")
    handle = attach_stochastic_depth(vit, 0.3)
    assert len(handle.targets) == 2 * 12  # each block's attention half and MLP half
    assert handle.targets[:2] == ["features.blocks.0.attention", "features.blocks.0.feedforward"]
    for model, ends in (
        (convnext, "layer_scale.gamma"),
        (vit, ("attn.proj.weight", "attn.proj.bias", "mlp.out.weight", "mlp.out.bias")),
    ):
        blockzoo.zero_init_last_(model)
        zeroed = [r.name for r in init_report(model).rows if r.initializer == "zeros (zero_init_last_)"]
        assert zeroed
        assert all(name.endswith(ends) for name in zeroed)
    blocks = [m for m in vit.modules() if isinstance(m, TransformerBlock)]
    assert len([n for n in zeroed if n.endswith("weight")]) == 2 * len(blocks)


def _lrs(model: torch.nn.Module) -> dict[str, tuple[float, float]]:
    groups, _ = param_groups(model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    return {n: (g["lr"], g["weight_decay"]) for g in groups for n, _ in g["params"]}


def test_layer_decay_follows_the_convnext_stages_and_the_vit_blocks() -> None:
    lrs = _lrs(create_model("convnext_tiny", device="meta"))
    # stem 0, stage s (and the downsampling into it) s, head 5
    assert lrs["head.fc.weight"] == (1.0, 0.05)
    assert lrs["features.stage4.0.branch.dw.weight"] == (0.5, 0.05)
    assert lrs["features.down4.conv.weight"] == (0.5, 0.05)
    assert lrs["features.stem.conv.weight"] == (0.5**5, 0.05)
    assert lrs["features.stage1.0.branch.layer_scale.gamma"] == (0.5**4, 0.0)  # role scale: no decay
    lrs = _lrs(create_model("vit_b_32", device="meta"))
    # embeddings 0, block i at i + 1, the final norm and the head at 13
    assert lrs["head.fc.weight"] == (1.0, 0.05)
    assert lrs["features.blocks.11.attention.branch.attn.qkv.weight"] == (0.5, 0.05)
    assert lrs["features.blocks.0.feedforward.branch.mlp.layers.0.fc.weight"] == (0.5**12, 0.05)
    assert lrs["features.pos_embed.weight"] == (0.5**13, 0.0)  # role embedding: no decay
    assert lrs["features.class_token.token"] == (0.5**13, 0.0)


def test_fusion_leaves_layer_norms_alone_and_summary_shows_the_blocks() -> None:
    model = create_model("convnext_tiny", num_classes=3, device="meta")
    report = blockzoo.explain_fusion(model)
    assert report.folded == report.skipped == report.unpaired == ()  # layer norms only: nothing to fold
    text = str(blockzoo.summary(model, (1, 3, 64, 64), depth=3))
    assert "ConvNeXtBlock" in text
    text = str(blockzoo.summary(create_model("vit_b_32", num_classes=3, device="meta"), (1, 3, 64, 64), depth=3))
    assert "TransformerBlock" in text
    assert "ClassToken" in text
