"""fuse_conv_bn and explain_fusion: every zoo CNN, torchvision's ResNet, VGG and MobileNet v2, any Sequential."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

import blockzoo
from blockzoo import explain_fusion, fuse_conv_bn
from deploy_cases import CNNS, build, fill_, small_input

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
# Folding reorders a few multiply-adds per layer: float64 shows the fold is exact, float32 that it stays close.
# (A wrong fold moves the outputs by their own size; deploy_cases.fill_ scales residual branches down, so even
# the deepest zoo networks amplify rounding little.)
RELATIVE = {torch.float64: 1e-10, torch.float32: 1e-5}


def count_norms(model: nn.Module) -> int:
    return sum(isinstance(m, BATCH_NORMS) for m in model.modules())


def assert_same_outputs(fused: nn.Module, model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        want, got = model(x), fused(x)
    scale = want.abs().max()
    assert (got - want).abs().max() <= RELATIVE[x.dtype] * scale, "fused outputs differ"
    if want.dim() == 2:
        assert torch.equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize("name", CNNS)
def test_every_zoo_cnn_folds_every_pair_and_predicts_the_same(name: str) -> None:
    # The ImageNet families in float32 at 32x32 (time); the others in float64, where the fold is exact.
    info = blockzoo.model_info(name)
    dtype = torch.float32 if info.input_size[1] >= 224 else torch.float64
    model = build(name, dtype=dtype)
    norms = count_norms(model)
    report = explain_fusion(model)
    # DenseNet's pre-activation norms normalise a concatenation of earlier maps, which no single conv produces;
    # MaxViT's MBConv normalises its input first (a residual sum, or the stem's output), with no conv right before
    unfoldable = {norm for norm, _ in report.unpaired} if info.family in ("densenet", "maxvit") else set()
    if info.family == "maxvit":
        assert len(unfoldable) == 11  # one per MaxViT block
        assert all(norm.endswith(".mbconv.branch.0") for norm in unfoldable)
    assert all(why == "not found right after a conv" for norm, why in report.unpaired if norm in unfoldable)
    assert (len(report.folded), report.skipped, len(report.unpaired)) == (norms - len(unfoldable), (), len(unfoldable))

    fused = fuse_conv_bn(model)
    assert count_norms(fused) == len(unfoldable)
    assert not fused.training
    assert_same_outputs(fused, model, small_input(name, 3, dtype=dtype))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg11_bn"])
def test_torchvisions_models_fold_every_pair(name: str) -> None:
    with torch.device("meta"):  # torchvision's builders take no device; skip their initialisation
        model = getattr(torchvision.models, name)(weights=None)
    model = fill_(model.to_empty(device="cpu")).eval()
    norms = count_norms(model)
    assert norms > 0
    fused = fuse_conv_bn(model)
    assert count_norms(fused) == 0
    assert len(explain_fusion(model).folded) == norms
    assert_same_outputs(fused, model, torch.randn(3, 3, 32, 32))


def test_the_original_is_untouched() -> None:
    model = build("resnet20")
    before = copy.deepcopy(model.state_dict())
    modules = [(n, type(m)) for n, m in model.named_modules()]
    fused = fuse_conv_bn(model)
    assert [(n, type(m)) for n, m in model.named_modules()] == modules
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert fused.features.stem.conv is not model.features.stem.conv


def test_folded_blocks_keep_their_names_and_forward() -> None:
    model = blockzoo.create_model("resnet20").eval()
    fused = fuse_conv_bn(model)
    unit = fused.features.stage2[0].branch[0]
    assert isinstance(unit.norm, nn.Identity)
    assert unit.conv.bias is not None
    assert unit.conv.bias.requires_grad
    # the norms' keys go, each folded conv gains a bias; every other key stays
    norm_keys = {k for k in model.state_dict() if ".norm." in k}
    biases = {k.removesuffix("norm.weight") + "conv.bias" for k in norm_keys if k.endswith(".norm.weight")}
    assert set(fused.state_dict()) == (set(model.state_dict()) - norm_keys) | biases


@st.composite
def conv_norm_stacks(draw: st.DrawFn) -> tuple[nn.Sequential, tuple[int, ...]]:
    """Sequential stacks of convs (1d/2d/3d, transposed or not, grouped, with or without bias) and batch norms."""
    nd = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 4))
    layers: list[nn.Module] = []
    for _ in range(draw(st.integers(1, 3))):
        groups = draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
        out = groups * draw(st.integers(1, 3))
        transposed = draw(st.booleans())
        conv_type = (
            [nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d][nd - 1]
            if transposed
            else ([nn.Conv1d, nn.Conv2d, nn.Conv3d][nd - 1])
        )
        layers.append(conv_type(channels, out, 3, padding=1, groups=groups, bias=draw(st.booleans())))
        if draw(st.booleans()):
            norm_type = [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d][nd - 1]
            layers.append(norm_type(out, affine=draw(st.booleans())))
            layers.append(nn.ReLU())
        channels = out
    return nn.Sequential(*layers), (2, layers[0].in_channels, *[4] * nd)  # type: ignore[union-attr]


@given(conv_norm_stacks())
def test_any_sequential_stack_keeps_its_eval_outputs(case: tuple[nn.Sequential, tuple[int, ...]]) -> None:
    stack, shape = case
    model = fill_(stack.double()).eval()
    report = explain_fusion(model)
    grouped_transposed = [
        (c, n)
        for c, n in zip(model, list(model)[1:], strict=False)
        if isinstance(n, BATCH_NORMS) and isinstance(c, TRANSPOSED) and c.groups > 1
    ]
    assert len(report.skipped) == len(grouped_transposed)
    assert len(report.folded) + len(report.skipped) == count_norms(model)
    fused = fuse_conv_bn(model, strict=False)
    assert count_norms(fused) == len(report.skipped)
    assert_same_outputs(fused, model, torch.randn(shape, dtype=torch.float64))


def test_a_norm_with_no_conv_before_it_stays_and_is_listed() -> None:
    mlp = blockzoo.MLP(8, [16], out_features=4, norm_layer="batchnorm")
    model = nn.Sequential(nn.BatchNorm1d(8), mlp, blockzoo.ConvNormAct(1, 2, order="norm-act-conv")).eval()
    report = explain_fusion(model)
    assert report.folded == ()
    assert report.skipped == ()
    assert report.unpaired == (
        ("0", "not found right after a conv"),
        ("1.layers.0.norm", "follows a linear layer; only convolutions are folded"),
        ("2.norm", "not found right after a conv"),
    )
    assert "3 batch norms left as they are" in str(report)


def test_a_custom_forward_is_not_guessed() -> None:
    class PreNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv1(self.bn1(x))  # the norm runs first: folding it into the conv would be wrong

    model = PreNorm().eval()
    assert explain_fusion(model).unpaired == (("bn1", "not found right after a conv"),)
    x = torch.randn(1, 4, 6, 6)
    torch.testing.assert_close(fuse_conv_bn(model)(x), model(x))


def _shared() -> nn.Module:
    conv, norm = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)
    return nn.Sequential(conv, norm, nn.Sequential(conv, norm))


def _parametrized() -> nn.Module:
    conv = nn.utils.parametrizations.weight_norm(nn.Conv2d(2, 2, 1))
    assert parametrize.is_parametrized(conv)
    return nn.Sequential(conv, nn.BatchNorm2d(2))


class NormAct(nn.BatchNorm2d):
    """A batch norm that adds its activation: folding would drop the ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))


class StandardizedConv(nn.Conv2d):
    """Weight standardisation in forward: the kernel folded into would not be the one that runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return self._conv_forward(x, w, self.bias)


class StandardizedConvInside(nn.Conv2d):
    """The same, in _conv_forward, which torch's own forward calls."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        weight = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
        return super()._conv_forward(x, weight, bias)


class ConvNormActPlusConv(blockzoo.ConvNormAct):
    """A subclass whose forward also uses the conv's output, which folding would change."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.act(self.norm(y)) + y


def _with_stats(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: nn.Sequential(nn.Conv2d(2, 4, 3), NormAct(4)), "NormAct has its own forward"),
        (lambda: nn.Sequential(StandardizedConv(2, 4, 3), nn.BatchNorm2d(4)), "StandardizedConv has its own forward"),
        (
            lambda: nn.Sequential(StandardizedConvInside(2, 4, 3), nn.BatchNorm2d(4)),
            "StandardizedConvInside has its own _conv_forward",
        ),
        (lambda: ConvNormActPlusConv(2, 4), "ConvNormActPlusConv overrides its block's forward"),
    ],
)
def test_a_subclass_that_changes_forward_is_not_folded(make: object, match: str) -> None:
    model = _with_stats(make())  # type: ignore[operator]
    ((_, _, why),) = explain_fusion(model).skipped
    assert match in why
    with pytest.raises(ValueError, match=f"cannot fold 1 conv -> batch-norm pair: .*{match}"):
        fuse_conv_bn(model)
    x = torch.randn(2, 2, 6, 6)
    torch.testing.assert_close(fuse_conv_bn(model, strict=False)(x), model(x))


def test_a_subclass_that_keeps_torchs_forward_is_folded() -> None:
    class Named(nn.BatchNorm2d):
        pass

    model = _with_stats(nn.Sequential(nn.Conv2d(2, 4, 3), Named(4)))
    assert explain_fusion(model).folded == (("0", "1"),)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)),
            "no running statistics",
        ),
        (lambda: nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(3)), "gives 4 channels and the norm expects 3"),
        (
            lambda: nn.Sequential(nn.ConvTranspose2d(2, 4, 1, groups=2), nn.BatchNorm2d(4)),
            "transposed conv with groups=2",
        ),
        (lambda: nn.Sequential(nn.LazyConv2d(4, 1), nn.BatchNorm2d(4)), "lazy module that has not run"),
        (_parametrized, "parametrized weight"),
        (_shared, "also used elsewhere in the model, outside this pair"),
    ],
)
def test_a_pair_that_cannot_be_folded_is_refused_or_left(make: object, match: str) -> None:
    model = make().eval()  # type: ignore[operator]
    with pytest.raises(ValueError, match=f"cannot fold .*{match}.*Pass strict=False.*Received: strict=True"):
        fuse_conv_bn(model)
    (skipped,) = {why for _, _, why in explain_fusion(model).skipped}
    assert match in skipped
    fused = fuse_conv_bn(model, strict=False)
    assert count_norms(fused) == count_norms(model)


def test_a_block_used_in_several_places_is_folded_once_for_all_of_them() -> None:
    block = blockzoo.ConvNormAct(3, 4)
    model = _with_stats(nn.Sequential(block, nn.Conv2d(4, 3, 1), block)).eval()
    report = explain_fusion(model)
    assert report.folded == (("0.conv", "0.norm"),)
    assert report.skipped == ()
    fused = fuse_conv_bn(model)
    assert fused[0] is fused[2]  # the copy keeps the sharing, so both places run the folded conv
    assert isinstance(fused[0].norm, nn.Identity)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)


def test_a_conv_held_under_two_names_is_not_folded() -> None:
    conv = nn.Conv2d(2, 2, 1)
    model = nn.Sequential()
    model.add_module("a", conv)
    model.add_module("norm", nn.BatchNorm2d(2))
    model.add_module("b", conv)  # the same conv runs again after the norm: folding would change that call
    (skipped,) = explain_fusion(model.eval()).skipped
    assert skipped[:2] == ("a", "norm")
    assert "also used elsewhere" in skipped[2]


def test_torchvisions_frozen_batch_norm_is_folded() -> None:
    from torchvision.ops import FrozenBatchNorm2d

    torch.manual_seed(0)
    norm = FrozenBatchNorm2d(4)
    for buffer in (norm.weight, norm.bias, norm.running_mean):
        buffer.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), norm, nn.ReLU()).eval()
    assert explain_fusion(model).folded == (("0", "1"),)
    fused = fuse_conv_bn(model)
    assert isinstance(fused[1], nn.Identity)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)
    lone = nn.Sequential(FrozenBatchNorm2d(3), nn.Conv2d(3, 4, 1))
    assert explain_fusion(lone).unpaired == (("0", "not found right after a conv"),)


def test_a_model_in_training_mode_is_refused() -> None:
    model = blockzoo.create_model("simple_cnn")
    with pytest.raises(
        ValueError,
        match=r"must be in eval mode .*call model.eval\(\) first. Received: modules in training mode: \(the model\), features, features.stage1 and \d+ more",
    ):
        fuse_conv_bn(model)
    model.eval()
    model.features.stage2.convs[0].norm.train()
    with pytest.raises(ValueError, match=r"Received: modules in training mode: features.stage2.convs.0.norm$"):
        fuse_conv_bn(model)


def test_a_non_module_is_refused() -> None:
    with pytest.raises(TypeError, match=r"model must be an nn\.Module\. Received: model=dict"):
        fuse_conv_bn({})  # type: ignore[type-var]
    with pytest.raises(TypeError, match=r"model must be an nn\.Module\. Received: model=list"):
        explain_fusion([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"strict must be True or False\. Received: strict=0"):
        fuse_conv_bn(nn.Sequential().eval(), strict=0)  # type: ignore[arg-type]
