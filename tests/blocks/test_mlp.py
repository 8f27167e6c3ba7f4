import pytest
import torch
from torch import nn

from blockzoo import MLP, ClassifierHead, InputError


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
        match=r"(?s)MLP expected input of shape \[N, \*, 4\], received \[2, 5\] \(torch.float32\).*5 channels where 4",
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
