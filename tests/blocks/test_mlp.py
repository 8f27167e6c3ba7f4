import pytest
import torch
from torch import nn

from blockzoo import MLP, ClassifierHead, ConvBlock, InputError


def test_mlp_layers_and_output() -> None:
    mlp = MLP(10, (8, 6), 3, norm_layer="layernorm", act_layer="gelu", drop_rate=0.1)
    assert [type(m).__name__ for m in mlp.layers[0].children()] == ["Linear", "LayerNorm", "GELU", "Dropout"]
    assert mlp.out.out_features == 3
    assert mlp(torch.randn(4, 5, 10)).shape == (4, 5, 3)
    assert MLP(10, (8, 6))(torch.randn(2, 10)).shape == (2, 6)
    assert MLP(10, (), 4)(torch.randn(2, 10)).shape == (2, 4)


def test_mlp_equals_hand_written_layers() -> None:
    mlp = MLP(4, (5,), 2).eval()
    x = torch.randn(3, 4)
    l0, out = mlp.layers[0].fc, mlp.out
    torch.testing.assert_close(mlp(x), out(torch.relu(l0(x))))


def _graph_nodes(out: torch.Tensor) -> set[str]:
    seen, stack, names = set(), [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


@pytest.mark.parametrize("norm_layer", [None, "layernorm"])
@pytest.mark.parametrize("grad", [True, False])
def test_mlp_on_tokens_equals_hand_written_layers_without_copying_views(grad: bool, norm_layer: str | None) -> None:
    # On [N, T, C] a linear layer's output is a view of its 2-D product; an in-place
    # activation on it would make autograd copy it back (CopySlices).
    torch.manual_seed(0)
    mlp = MLP(4, (6, 5), 3, norm_layer=norm_layer)
    x = torch.randn(2, 7, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    with torch.set_grad_enabled(grad):
        out = mlp(x)
        h = x_ref
        for layer in mlp.layers:
            h = torch.relu(layer.norm(layer.fc(h)))
        ref = mlp.out(h)
    assert out.shape == (2, 7, 3)
    torch.testing.assert_close(out, ref)
    if grad:
        assert "CopySlices" not in _graph_nodes(out)
        out.square().sum().backward()
        weight_grads = [p.grad.clone() for p in mlp.parameters()]
        mlp.zero_grad()
        ref.square().sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad)
        torch.testing.assert_close(weight_grads, [p.grad for p in mlp.parameters()])


def test_mlp_bad_arguments_and_inputs() -> None:
    with pytest.raises(
        ValueError, match=r"An MLP needs at least one layer.*Received: hidden_features=\(\), out_features=None"
    ):
        MLP(4, ())
    with pytest.raises(ValueError, match=r"hidden_features must be a positive int\. Received: hidden_features=0"):
        MLP(4, (8, 0))
    with pytest.raises(
        TypeError, match=r"hidden_features must be a sequence of positive ints.*Received: hidden_features=8"
    ):
        MLP(4, 8)  # type: ignore[arg-type]
    with pytest.raises(
        InputError,
        match=r"(?s)MLP expected input of shape \[N, \*, 4\], received \[2, 5\] \(torch.float32\).*"
        r"Hint: the input has 5 features in its last dimension where 4 were expected; .*in_features=5\.",
    ):
        MLP(4, (8,))(torch.randn(2, 5))
    with pytest.raises(InputError, match=r"MLP expected input of shape \[N, 4\], received \[2, 3, 4\]"):
        MLP(4, (8,), norm_layer="batchnorm")(torch.randn(2, 3, 4))
    with pytest.raises(InputError, match=r"torch.int64"):
        MLP(4, (8,))(torch.ones(2, 4, dtype=torch.long))


def test_head_pools_flattens_and_classifies() -> None:
    head = ClassifierHead(16, 5, hidden_features=(8,), drop_rate=0.2).eval()
    x = torch.randn(3, 16, 4, 4)
    expected = head.fc(head.hidden(x.mean((2, 3))))
    torch.testing.assert_close(head(x), expected)
    assert head.num_features == 8


def test_head_without_pooling_is_the_course_flatten() -> None:
    head = ClassifierHead(8 * 3 * 3, 10, pool_layer=None).eval()
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(head(x), head.fc(x.flatten(1)))
    with pytest.raises(
        InputError,
        match=r"(?s)ClassifierHead expected input of shape \[N, \*\] with 72 elements per sample, received \[2, 8, 4, 4\]",
    ):
        head(torch.randn(2, 8, 4, 4))


def test_log_probs_with_nll_equals_cross_entropy() -> None:
    head = ClassifierHead(6, 4, log_probs=True)
    plain = ClassifierHead(6, 4)
    plain.load_state_dict(head.state_dict())
    x, y = torch.randn(5, 6, 2, 2), torch.tensor([0, 1, 2, 3, 0])
    torch.testing.assert_close(nn.functional.nll_loss(head(x), y), nn.functional.cross_entropy(plain(x), y))
    torch.testing.assert_close(head(x).exp().sum(1), torch.ones(5))


def test_reset_replaces_the_classifier_in_place() -> None:
    head = ClassifierHead(6, 4, dtype=torch.float64)
    head.reset(9)
    assert head.fc.out_features == 9
    assert head.fc.weight.dtype == torch.float64
    assert head.num_classes == 9
    assert head(torch.randn(2, 6, 3, 3, dtype=torch.float64)).shape == (2, 9)
    head.reset(0)
    assert isinstance(head.fc, nn.Identity)
    assert head.output_shape((2, 6, 3, 3)) == (2, 6)
    with pytest.raises(ValueError, match=r"num_classes must be a non-negative int\. Received: num_classes=-1"):
        head.reset(-1)
    assert isinstance(head.fc, nn.Identity)


# ---------------------------------------------------------------- hints that give the number that works


def test_flattening_head_after_two_pooling_stages_names_in_features_or_one_more_stage() -> None:
    # The course's mistake: two 2x2 pooling stages leave a 64 x 8 x 8 map on a 32x32 input, not 64 x 4 x 4.
    model = nn.Sequential(ConvBlock(3, 32), ConvBlock(32, 64), ClassifierHead(64 * 4 * 4, 10, pool_layer=None))
    with pytest.raises(
        InputError,
        match=r"(?s)ClassifierHead expected input of shape \[N, \*\] with 1024 elements per sample, "
        r"received \[2, 64, 8, 8\].*Hint: this head flattens its input \(pool_layer=None\), and a 64 x 8 x 8 map "
        r"has 4096 elements per sample, not 1024: build it with in_features=4096, or add one more pooling stage "
        r"that halves the map \(8x8 -> 4x4\)\.$",
    ):
        model(torch.zeros(2, 3, 32, 32))
    fixed = nn.Sequential(ConvBlock(3, 32), ConvBlock(32, 64), ClassifierHead(4096, 10, pool_layer=None))
    assert fixed(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    deeper = nn.Sequential(
        ConvBlock(3, 32), ConvBlock(32, 64), ConvBlock(64, 64), ClassifierHead(1024, 10, pool_layer=None)
    )
    assert deeper(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_flattening_head_hints_for_fewer_stages_and_for_the_channel_count() -> None:
    with pytest.raises(InputError, match=r"in_features=4096, or use one pooling stage fewer \(a 16x16 map\)\.$"):
        ClassifierHead(64 * 16 * 16, 10, pool_layer=None)(torch.zeros(2, 64, 8, 8))
    with pytest.raises(
        InputError,
        match=r"in_features=4096, or pool instead of flattening: a head with the default pool_layer takes in_features=64\.$",
    ):
        ClassifierHead(64, 10, pool_layer=None)(torch.zeros(2, 64, 8, 8))
    with pytest.raises(
        InputError, match=r"Hint: build this head with in_features=4096, the number of features per sample\.$"
    ):
        ClassifierHead(1000, 10, pool_layer=None)(torch.zeros(2, 4096))
    # The same hint when the shape is checked without data.
    with pytest.raises(InputError, match=r"build it with in_features=4096, or add one more pooling stage"):
        ClassifierHead(1024, 10, pool_layer=None).output_shape((2, 64, 8, 8))


def test_pooling_head_hint_names_the_channel_count() -> None:
    with pytest.raises(
        InputError,
        match=r"(?s)ClassifierHead expected input of shape \[N, 128, H, W\], received \[2, 64, 8, 8\].*"
        r"Hint: this head pools the map to its 64 channels, so in_features is the channel count: "
        r"build it with in_features=64, or fix the previous layer to give 128 channels\.$",
    ):
        nn.Sequential(ConvBlock(3, 32), ConvBlock(32, 64), ClassifierHead(128, 10))(torch.zeros(2, 3, 32, 32))
    with pytest.raises(
        InputError,
        match=r"build it with in_features=64, .* 4096 is the flattened size \(64 x 8 x 8\), which a head with pool_layer=None takes\.$",
    ):
        ClassifierHead(4096, 10)(torch.zeros(2, 64, 8, 8))
    with pytest.raises(InputError, match=r"the input is already flat; .*pool_layer=None and in_features=4096"):
        ClassifierHead(4096, 10)(torch.zeros(2, 4096))
    assert ClassifierHead(64, 10)(torch.zeros(2, 64, 8, 8)).shape == (2, 10)


def test_mlp_hint_says_to_flatten_a_map() -> None:
    with pytest.raises(
        InputError,
        match=r"Hint: this MLP takes \[N, features\]: flatten the input first \(nn.Flatten\(\) gives 64 x 8 x 8 = 4096 features\)\.$",
    ):
        MLP(4096, (10,))(torch.zeros(2, 64, 8, 8))
    with pytest.raises(
        InputError,
        match=r"this MLP takes \[N, features\] \(its batch norm reads dimension 1 as the features\): flatten the input "
        r"first \(nn.Flatten\(\) gives 64 x 8 x 8 = 4096 features\) and build the MLP with in_features=4096\.$",
    ):
        MLP(1024, (10,), norm_layer="batchnorm")(torch.zeros(2, 64, 8, 8))
    # an integer input still gets the dtype hint
    with pytest.raises(InputError, match=r"Hint: blocks compute in floating point"):
        ClassifierHead(1024, 10, pool_layer=None)(torch.zeros(2, 64, 8, 8, dtype=torch.long))
