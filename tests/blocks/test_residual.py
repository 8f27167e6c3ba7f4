import copy
import pickle

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import BasicBlock, Bottleneck, InputError, InvertedResidual, ResidualBlock
from blockzoo.blocks import PadShortcut


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_torchvision() -> None:
    tv = pytest.importorskip("torchvision.models.resnet")
    down = nn.Sequential(nn.Conv2d(64, 128, 1, stride=2, bias=False), nn.BatchNorm2d(128))
    assert count(BasicBlock(64, 128, stride=2)) == count(tv.BasicBlock(64, 128, stride=2, downsample=down))
    down = nn.Sequential(nn.Conv2d(256, 512, 1, stride=2, bias=False), nn.BatchNorm2d(512))
    assert count(Bottleneck(256, 512, stride=2)) == count(tv.Bottleneck(256, 128, stride=2, downsample=down))
    # ResNeXt-50 32x4d, first stage: width = planes * base_width / 64 * groups = 64 * 4 / 64 * 32 = 128
    down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
    theirs = tv.Bottleneck(64, 64, groups=32, base_width=4, downsample=down)
    assert count(Bottleneck(64, 256, mid_channels=128, groups=32)) == count(theirs)
    mobilenet = pytest.importorskip("torchvision.models.mobilenetv2")
    assert count(InvertedResidual(32, 16, expand_ratio=1)) == count(mobilenet.InvertedResidual(32, 16, 1, 1))
    assert count(InvertedResidual(24, 24)) == count(mobilenet.InvertedResidual(24, 24, 1, 6))


def test_basic_block_equals_its_formula() -> None:
    block = BasicBlock(4, 8, stride=2).eval()
    x = torch.randn(2, 4, 6, 6)
    expected = torch.relu(block.branch[1](block.branch[0](x)) + block.shortcut(x))
    torch.testing.assert_close(block(x), expected)


def test_zero_init_last_starts_each_block_as_its_shortcut() -> None:
    x = torch.randn(2, 8, 6, 6)
    for block in [
        BasicBlock(8, 8),
        Bottleneck(8, 8, mid_channels=4),
        InvertedResidual(8, 8),
        BasicBlock(8, 16, stride=2),
    ]:
        block.zero_init_last_().eval()
        expected = block.shortcut(x)
        expected = torch.relu(expected) if not isinstance(block, InvertedResidual) else expected
        torch.testing.assert_close(block(x), expected, rtol=0, atol=0)
    plain = InvertedResidual(8, 16, stride=2)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    plain.zero_init_last_()
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())


def test_pad_shortcut_is_option_a() -> None:
    x = torch.randn(2, 3, 5, 5)
    y = PadShortcut(3, 6, stride=2)(x)
    torch.testing.assert_close(y[:, :3], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 3:]) == 0
    block = BasicBlock(16, 32, stride=2, shortcut="pad")
    assert isinstance(block.shortcut, PadShortcut)
    assert count(block) == count(block.branch)


def test_inverted_residual_without_shortcut_returns_the_branch() -> None:
    block = InvertedResidual(8, 16, stride=2).eval()
    x = torch.randn(1, 8, 8, 8)
    assert not block.has_shortcut
    torch.testing.assert_close(block(x), block.branch(x))


def test_drop_path_drops_the_branch_in_training() -> None:
    block = BasicBlock(4, 4, drop_path_rate=0.5).train()
    assert block.drop_path.p == 0.5
    torch.manual_seed(0)
    x = torch.randn(64, 4, 3, 3)
    out = block(x)
    kept_shortcut_only = [torch.allclose(out[i], torch.relu(x[i])) for i in range(64)]
    assert 10 < sum(kept_shortcut_only) < 54


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match=r"shortcut must be one of 'conv', 'pad'\. Received: shortcut='proj'"):
        BasicBlock(4, 8, shortcut="proj")
    with pytest.raises(
        ValueError,
        match=r"out_channels must be at least in_channels \(8\) for a padding shortcut\. Received: out_channels=4",
    ):
        BasicBlock(8, 4, stride=2, shortcut="pad")
    with pytest.raises(
        ValueError, match=r"drop_path_rate must be a number in \[0, 1\)\. Received: drop_path_rate=1\.5"
    ):
        Bottleneck(4, 8, drop_path_rate=1.5)
    with pytest.raises(ValueError, match=r"expand_ratio must be a finite number >= 1\. Received: expand_ratio=0\.5"):
        InvertedResidual(4, 4, expand_ratio=0.5)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(
            ValueError, match=rf"expand_ratio must be a finite number >= 1\. Received: expand_ratio={bad}"
        ):
            InvertedResidual(4, 4, expand_ratio=bad)
    with pytest.raises(TypeError, match=r"branch must be an nn\.Module\. Received: branch=int"):
        ResidualBlock(3)  # type: ignore[arg-type]
    with pytest.raises(
        InputError, match=r"(?s)BasicBlock expected input of shape \[N, 4, H, W\], received \[2, 6, 5, 5\]"
    ):
        BasicBlock(4, 8)(torch.randn(2, 6, 5, 5))
    mismatched = ResidualBlock(nn.Conv2d(4, 8, 1))
    with pytest.raises(
        InputError, match=r"ResidualBlock: the branch gives \[2, 8, 5, 5\] but the shortcut \[2, 4, 5, 5\]"
    ):
        mismatched.output_shape((2, 4, 5, 5))


def test_residual_blocks_expose_their_parts() -> None:
    for block in [BasicBlock(4, 4), Bottleneck(4, 8), InvertedResidual(4, 4), ResidualBlock(nn.Identity())]:
        assert {"branch", "shortcut", "drop_path"} <= {n for n, _ in block.named_children()}
        assert callable(block.zero_init_last_)
    assert blockzoo.Role.NORM in BasicBlock(4, 4).param_roles().values()


@pytest.mark.parametrize("make", [lambda: BasicBlock(4, 8, stride=2), lambda: InvertedResidual(4, 6, stride=2)])
def test_hooks_on_the_layers_that_run_fire(make) -> None:  # type: ignore[no-untyped-def]
    # Plain ConvNormAct units run as their conv, norm and act (as torchvision's blocks run conv1, bn1,
    # relu): hooks on those layers fire and an output-replacing hook takes effect.
    block = make().eval()
    x = torch.randn(2, 4, 6, 6)
    plain = block(x)
    seen: list[str] = []
    handles = [
        block.branch[0].conv.register_forward_hook(lambda m, i, o: seen.append("conv")),
        block.branch[0].norm.register_forward_pre_hook(lambda m, i: seen.append("norm")),
        block.branch[-1].norm.register_forward_hook(lambda m, i, o: o * 2),
    ]
    hooked = block(x)
    assert seen == ["conv", "norm"]
    assert not torch.allclose(hooked, plain)
    for h in handles:
        h.remove()
    torch.testing.assert_close(block(x), plain, rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: BasicBlock(4, 4), lambda: Bottleneck(4, 4), lambda: InvertedResidual(4, 4)])
def test_a_user_conv_norm_act_subclass_in_a_branch_runs_its_own_forward(make) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    class Doubling(blockzoo.ConvNormAct):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            return super().forward(x) * 2

    block = make().eval()
    x = torch.randn(1, 4, 5, 5)
    plain = block(x)
    last = block.branch[-1]
    replacement = Doubling(last.in_channels, last.out_channels, last.conv.kernel_size, act_layer=None)
    replacement.load_state_dict(last.state_dict())
    block.branch[-1] = replacement.eval()
    out = block(x)
    assert calls == [1]
    act = torch.relu if not isinstance(block, InvertedResidual) else (lambda t: t)
    # the branch's output is doubled: act(2 * branch + x) where the plain block gave act(branch + x)
    branch_only = block.branch(x) / 2
    torch.testing.assert_close(out, act(2 * branch_only + x))
    torch.testing.assert_close(plain, act(branch_only + x))


def test_has_shortcut_is_explicit() -> None:
    block = ResidualBlock(nn.Conv2d(4, 8, 1), has_shortcut=False)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(block(x), block.branch(x))
    assert block.output_shape((2, 4, 3, 3)) == (2, 8, 3, 3)
    before = block.branch.weight.detach().clone()
    assert block.zero_init_last_() is block
    torch.testing.assert_close(block.branch.weight, before)  # nothing zeroed: it has no shortcut
    assert not InvertedResidual(4, 8).has_shortcut
    assert InvertedResidual(4, 4).has_shortcut
    assert BasicBlock(4, 8, stride=2).has_shortcut
    with pytest.raises(
        ValueError, match=r"shortcut=None and drop_path_rate=0 .* Received: shortcut=None, drop_path_rate=0\.1"
    ):
        ResidualBlock(nn.Identity(), drop_path_rate=0.1, has_shortcut=False)
    with pytest.raises(TypeError, match=r"has_shortcut must be True or False\. Received: has_shortcut=1"):
        ResidualBlock(nn.Identity(), has_shortcut=1)  # type: ignore[arg-type]


def test_branch_with_a_subclassed_sub_block_runs_its_forward() -> None:
    class Doubling(blockzoo.ConvNormAct):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    branch = nn.Sequential(Doubling(4, 4, act_layer=None))
    block = ResidualBlock(branch).eval()
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(block(x), branch[0]._run_stages(x) * 2 + x)


def test_a_sequential_subclass_branch_runs_its_own_forward() -> None:
    class Halving(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) / 2

    block = BasicBlock(4, 4).eval()
    x = torch.randn(1, 4, 5, 5)
    expected = torch.relu(block.branch(x) / 2 + x)
    block.branch = Halving(*block.branch)
    torch.testing.assert_close(block(x), expected)
    assert block.modules_run_inline() == {}


def test_zero_init_last_zeroes_the_last_parameter_of_the_first_listed_role_the_branch_has() -> None:
    # a norm then a layer scale: the default roles zero the norm's scale, (scale, weight) the layer scale
    def branch() -> nn.Sequential:
        layers = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), blockzoo.LayerScale(4, init_value=0.5))
        nn.init.ones_(layers[1].bias)  # a shift that zero_init_last_ must leave alone
        return layers

    class ScaleFirst(ResidualBlock):
        zero_init_roles = (blockzoo.Role.SCALE, blockzoo.Role.WEIGHT)

    plain, scaled = ResidualBlock(branch()).zero_init_last_(), ScaleFirst(branch()).zero_init_last_()
    assert plain.branch[1].weight.abs().sum() == 0
    assert plain.branch[1].bias.abs().sum() > 0
    assert plain.branch[2].gamma.abs().sum() > 0
    assert scaled.branch[2].gamma.abs().sum() == 0
    assert scaled.branch[1].weight.abs().sum() > 0
    linear_only = ScaleFirst(nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4))).zero_init_last_()
    assert linear_only.branch[1].weight.abs().sum() == 0
    assert linear_only.branch[1].bias.abs().sum() == 0
    assert linear_only.branch[0].weight.abs().sum() > 0


def test_zero_init_last_without_a_layer_to_zero_names_the_roles_it_looked_for() -> None:
    with pytest.raises(
        ValueError,
        match=r"zero_init_last_ needs a parameter of role norm or weight in ResidualBlock\.branch to zero\. "
        r"Received: branch=ReLU",
    ):
        ResidualBlock(nn.ReLU()).zero_init_last_()


class _Counting(nn.Module):
    """An identity that counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def test_an_identity_shortcut_is_not_called_and_the_drop_path_always_is() -> None:
    block = BasicBlock(4, 4)
    seen: list[str] = []
    block.drop_path.register_forward_hook(lambda *_: seen.append("drop_path"))
    block.shortcut.register_forward_hook(lambda *_: seen.append("shortcut"))
    x = torch.randn(2, 4, 5, 5)
    block(x)  # training, rate 0: the drop path's forward runs (and returns its input)
    block.eval()(x)
    assert seen == ["drop_path", "drop_path"]


def test_the_branch_shortcut_and_drop_path_that_run_follow_every_way_of_replacing_them() -> None:
    block = BasicBlock(4, 4).eval()
    x = torch.randn(2, 4, 5, 5)
    block.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Tanh())  # attribute assignment
    torch.testing.assert_close(block(x), torch.relu(block.branch(x) + x))
    block.add_module("shortcut", nn.Conv2d(4, 4, 1))  # as torch's converters replace children
    torch.testing.assert_close(block(x), torch.relu(block.branch(x) + block.shortcut(x)))
    block.shortcut = nn.Identity()
    torch.testing.assert_close(block(x), torch.relu(block.branch(x) + x))
    clone = copy.deepcopy(block)  # the copy runs its own children, not the original's
    with torch.no_grad():
        clone.branch[0].weight.zero_()
        clone.branch[0].bias.zero_()
    torch.testing.assert_close(clone(x), torch.relu(x))
    torch.testing.assert_close(block(x), torch.relu(block.branch(x) + x))
    restored = pickle.loads(pickle.dumps(clone))
    restored.branch = nn.Identity()  # a branch that returns the block's input: not added into in place
    before = x.clone()
    torch.testing.assert_close(restored(x), torch.relu(2 * x))
    torch.testing.assert_close(x, before)
    del block.drop_path
    with pytest.raises(AttributeError, match=r"BasicBlock has no 'drop_path' sub-layer; assign a module to it"):
        block(x)


@pytest.mark.parametrize("branch", [nn.Unflatten(1, (4,)), nn.Sequential(nn.Conv2d(4, 4, 1), nn.Tanh())])
def test_a_replaced_branch_is_added_out_of_place(branch: nn.Module) -> None:
    # a view of the input (added in place, it would change the caller's tensor) and a tensor autograd saved
    block = BasicBlock(4, 4)
    block.branch = branch
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    before = x.detach().clone()
    block(x).sum().backward()  # an in-place add into tanh's output fails here
    torch.testing.assert_close(x.detach(), before)
    assert x.grad is not None
    built = BasicBlock(4, 4)
    assert built._add_in_place  # the branch it built ends in a conv-norm: a new tensor
    built.add_module("branch", built.branch)  # the same branch again (as convert_sync_batchnorm re-adds children)
    assert built._add_in_place
    assert copy.deepcopy(block)._add_in_place is False


def test_modules_put_in_place_of_the_drop_path_and_the_shortcut_are_called() -> None:
    block = BasicBlock(4, 4).eval()
    block.drop_path, block.shortcut = _Counting(), _Counting()
    x = torch.randn(2, 4, 5, 5)
    expected = torch.relu(block.branch(x) + x)
    torch.testing.assert_close(block(x), expected)
    assert (block.drop_path.calls, block.shortcut.calls) == (1, 1)
