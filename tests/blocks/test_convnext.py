"""LayerNorm2d, LayerScale and ConvNeXtBlock: what they compute, their roles, and their argument checks."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import blockzoo
from blockzoo import ConvNeXtBlock, InputError, LayerNorm2d, LayerScale, Role

torchvision = pytest.importorskip("torchvision")


@settings(max_examples=10, deadline=None)
@given(channels=st.integers(1, 6), h=st.integers(1, 4), w=st.integers(1, 4), channels_last=st.booleans())
def test_layer_norm_2d_normalises_each_position_over_its_channels(
    channels: int, h: int, w: int, channels_last: bool
) -> None:
    norm = LayerNorm2d(channels, eps=1e-6, dtype=torch.float64)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, channels, h, w, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-6) * norm.weight.view(-1, 1, 1) + norm.bias.view(-1, 1, 1)
    torch.testing.assert_close(norm(x), expected)
    assert norm.param_roles() == {"weight": Role.NORM, "bias": Role.NORM}


def test_layer_norm_2d_checks_its_input_and_arguments() -> None:
    with pytest.raises(
        InputError, match=r"LayerNorm2d expected input of shape \[N, 8, H, W\], received \[2, 4, 4, 8\]"
    ):
        LayerNorm2d(8)(torch.randn(2, 4, 4, 8))
    with pytest.raises(ValueError, match=r"num_channels must be .*Received: num_channels=0"):
        LayerNorm2d(0)
    with pytest.raises(ValueError, match=r"eps must be .*Received: eps=0"):
        LayerNorm2d(4, eps=0)


def test_layer_scale_multiplies_each_channel_and_is_free_of_weight_decay() -> None:
    tokens, maps = LayerScale(3, init_value=0.5), LayerScale(3, init_value=0.5, spatial_dims=2)
    assert tokens.gamma.shape == (3,)
    assert maps.gamma.shape == (3, 1, 1)
    with torch.no_grad():
        maps.gamma.copy_(torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1))
    out = maps(torch.ones(1, 3, 2, 2))
    assert out[0, :, 0, 0].tolist() == [1.0, 2.0, 3.0]
    torch.testing.assert_close(tokens(torch.ones(2, 4, 3)), torch.full((2, 4, 3), 0.5))
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), tokens)
    opt = blockzoo.create_optimizer(model, "adamw", lr=0.1, weight_decay=0.05)
    decay = {n: g["weight_decay"] for g in opt.param_groups for n in g["param_names"]}
    assert decay == {"0.weight": 0.05, "0.bias": 0.0, "1.gamma": 0.0}


def test_layer_scale_checks_its_input_and_arguments() -> None:
    with pytest.raises(InputError, match=r"LayerScale expected input of shape \[N, \*, 4\], received \[2, 4, 3\]"):
        LayerScale(4)(torch.randn(2, 4, 3))
    with pytest.raises(InputError, match=r"expected input of shape \[N, 4, \*spatial\] \(2 spatial dims\)"):
        LayerScale(4, spatial_dims=2)(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"spatial_dims must be one of 0, 1, 2, 3\. Received: spatial_dims=4"):
        LayerScale(4, spatial_dims=4)
    with pytest.raises(ValueError, match=r"spatial_dims must be one of 0, 1, 2, 3\. Received: spatial_dims=True"):
        LayerScale(4, spatial_dims=True)  # a bool is not a number of dimensions
    with pytest.raises(ValueError, match=r"spatial_dims must be one of 0, 1, 2, 3\. Received: spatial_dims=2\.0"):
        LayerScale(4, spatial_dims=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"init_value must be .*Received: init_value=nan"):
        LayerScale(4, init_value=float("nan"))


def _torchvision_cnblock(channels: int, layer_scale: float) -> torch.nn.Module:
    from torchvision.models.convnext import CNBlock

    return CNBlock(channels, layer_scale, 0.0)


def _pair_with_torchvision(channels: int) -> tuple[ConvNeXtBlock, torch.nn.Module]:
    torch.manual_seed(0)
    theirs = _torchvision_cnblock(channels, 0.3).eval()
    ours = ConvNeXtBlock(channels, layer_scale_init=0.3).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-0.5, 0.5)
    state = theirs.state_dict()
    # torchvision registers its layer scale first; ours ends the branch
    ours.load_state_dict(
        {
            "branch.dw.weight": state["block.0.weight"],
            "branch.dw.bias": state["block.0.bias"],
            "branch.norm.weight": state["block.2.weight"],
            "branch.norm.bias": state["block.2.bias"],
            "branch.fc1.weight": state["block.3.weight"],
            "branch.fc1.bias": state["block.3.bias"],
            "branch.fc2.weight": state["block.5.weight"],
            "branch.fc2.bias": state["block.5.bias"],
            "branch.layer_scale.gamma": state["layer_scale"],
        }
    )
    return ours, theirs


@pytest.mark.parametrize("channels_last", [False, True])
def test_convnext_block_equals_torchvisions_with_the_same_weights(channels_last: bool) -> None:
    ours, theirs = _pair_with_torchvision(16)
    x = torch.randn(2, 16, 9, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


def test_convnext_block_peak_memory_against_torchvisions_without_autograd() -> None:
    from benchmarks.bench_models import peak_bytes

    ours, theirs = _pair_with_torchvision(16)
    x = torch.randn(2, 16, 9, 9)
    # Alive at the activation, in torchvision's block (one nn.Sequential): its input and output, each 4 maps wide.
    # blockzoo's branch is as flat: the conv's output went when the norm returned, the norm's when fc1 did.
    assert peak_bytes(theirs, x) == 8 * x.nbytes
    assert peak_bytes(ours, x) == 8 * x.nbytes


@pytest.mark.parametrize("grad", [False, True])
def test_an_activity_penalty_on_a_convnext_hidden_layer_is_divided_by_the_batch_with_and_without_autograd(
    grad: bool,
) -> None:
    block = ConvNeXtBlock(8).eval()
    x = torch.randn(2, 8, 5, 5)
    branch = block.branch
    with torch.no_grad():
        hidden_out = branch.act(branch.fc1(branch.norm(branch.dw(x).permute(0, 2, 3, 1))))  # [2, 5, 5, 32]
    blockzoo.regularization.attach_activity_penalty(block, blockzoo.regularization.L1(0.1), include="branch.act")
    with torch.set_grad_enabled(grad):
        block(x)
        torch.testing.assert_close(blockzoo.regularization.regularization_loss(block), 0.1 * hidden_out.abs().sum() / 2)


@pytest.mark.parametrize("grad", [False, True])
def test_convnext_block_branch_calls_each_of_its_parts_as_a_module_in_order(grad: bool) -> None:
    block = ConvNeXtBlock(8, mlp_ratio=2.0)
    names = ["dw", "norm", "fc1", "act", "fc2", "layer_scale"]
    assert [name for name, _ in block.branch.named_children()] == names
    seen: list[tuple[str, tuple[int, ...]]] = []
    for name in names:
        block.branch.get_submodule(name).register_forward_hook(
            lambda _m, _args, out, name=name: seen.append((name, tuple(out.shape)))
        )
    with torch.set_grad_enabled(grad):
        block(torch.randn(2, 8, 5, 4))
    # each part's output: channels last from the norm to fc2, the hidden width 8 * 2 between fc1 and fc2
    assert seen == [
        ("dw", (2, 8, 5, 4)),
        ("norm", (2, 5, 4, 8)),
        ("fc1", (2, 5, 4, 16)),
        ("act", (2, 5, 4, 16)),
        ("fc2", (2, 5, 4, 8)),
        ("layer_scale", (2, 8, 5, 4)),
    ]


def test_convnext_block_builds_its_activation_out_of_place_and_initialises_fc1_for_it() -> None:
    relu = ConvNeXtBlock(8, act_layer="relu")
    assert isinstance(relu.branch.act, torch.nn.ReLU)
    assert not relu.branch.act.inplace
    assert isinstance(ConvNeXtBlock(8, act_layer=None).branch.act, torch.nn.Identity)
    assert isinstance(ConvNeXtBlock(8, norm_layer=None).branch.norm, torch.nn.Identity)
    block = ConvNeXtBlock(8)
    rows = {row.name: row.initializer for row in blockzoo.init.init_report(block).rows}
    # fc1 feeds the activation, fc2 the layer scale: the activation-aware table's choices for GELU and for none
    assert rows["branch.fc1.weight"] == str(blockzoo.init.activation_initializer(torch.nn.GELU()))
    assert rows["branch.fc2.weight"] == str(blockzoo.init.activation_initializer(None))
    assert rows["branch.fc1.bias"] == rows["branch.fc2.bias"] == "zeros"
    roles = block.param_roles()
    assert [roles[f"branch.{name}.weight"] for name in ("fc1", "fc2")] == [Role.WEIGHT, Role.WEIGHT]


@pytest.mark.parametrize("layer_scale_init", [1e-6, None])
def test_convnext_block_zero_init_last_starts_as_the_identity(layer_scale_init: float | None) -> None:
    block = ConvNeXtBlock(8, layer_scale_init=layer_scale_init).eval()
    x = torch.randn(2, 8, 5, 5)
    assert not torch.equal(block(x), x)
    blockzoo.zero_init_last_(block)
    with torch.no_grad():
        assert torch.equal(block(x), x)
    roles = block.param_roles()
    assert roles["branch.norm.weight"] is Role.NORM
    if layer_scale_init is not None:
        assert roles["branch.layer_scale.gamma"] is Role.SCALE
    else:  # without a layer scale the branch ends in fc2, weight and bias
        assert not block.branch.fc2.weight.any()
        assert not block.branch.fc2.bias.any()
        assert block.branch.fc1.weight.any()


def test_convnext_block_takes_stochastic_depth() -> None:
    model = torch.nn.Sequential(ConvNeXtBlock(4), ConvNeXtBlock(4), ConvNeXtBlock(4))
    handle = blockzoo.regularization.attach_stochastic_depth(model, 0.2)
    assert [block.drop_path.p for block in model] == [0.0, 0.1, 0.2]
    assert handle.targets == ["0", "1", "2"]


def test_convnext_block_checks_its_input_and_arguments() -> None:
    with pytest.raises(InputError, match=r"ConvNeXtBlock expected input of shape \[N, 8, H, W\], received \[2, 4, 4\]"):
        ConvNeXtBlock(8)(torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match=r"mlp_ratio must be .*Received: mlp_ratio=0"):
        ConvNeXtBlock(8, mlp_ratio=0)
    with pytest.raises(
        ValueError,
        match=r"mlp_ratio must give at least one hidden feature \(channels \* mlp_ratio >= 0\.5, channels=8\)\. Received: mlp_ratio=0\.01",
    ):
        ConvNeXtBlock(8, mlp_ratio=0.01)
    with pytest.raises(ValueError, match=r"drop_path_rate must be .*Received: drop_path_rate=1\.5"):
        ConvNeXtBlock(8, drop_path_rate=1.5)


def test_layer_scale_records_its_initializer_and_zero_init_last_updates_it() -> None:
    block = ConvNeXtBlock(8, layer_scale_init=1e-6)
    rows = {row.name: row for row in blockzoo.init.init_report(block).rows}
    assert [name for name, row in rows.items() if row.initializer in ("?", "-")] == []
    assert rows["branch.layer_scale.gamma"].initializer == "constant(val=1e-06)"
    blockzoo.zero_init_last_(block)
    rows = {row.name: row for row in blockzoo.init.init_report(block).rows}
    assert rows["branch.layer_scale.gamma"].initializer == "zeros (zero_init_last_)"


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_convnext_block_keeps_the_map_size_for_every_odd_kernel(kernel_size: int) -> None:
    block = ConvNeXtBlock(4, kernel_size)
    x = torch.randn(1, 4, 6, 5)
    assert block(x).shape == block.output_shape(x.shape) == x.shape


@pytest.mark.parametrize("kernel_size", [2, 4])
def test_convnext_block_refuses_an_even_kernel(kernel_size: int) -> None:
    # an even window with padding kernel_size // 2 would grow the map by one, breaking the shape contract
    with pytest.raises(ValueError, match=rf"kernel_size must be odd.*Received: kernel_size={kernel_size}"):
        ConvNeXtBlock(4, kernel_size)
