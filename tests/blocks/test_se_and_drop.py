import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from blockzoo import DropBlock, DropPath, InputError, SqueezeExcite


def test_squeeze_excite_formula() -> None:
    se = SqueezeExcite(8, rd_channels=3)
    x = torch.randn(2, 8, 5, 5)
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    s = torch.sigmoid(torch.relu(x.mean((2, 3)) @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(se(x), x * s[:, :, None, None])


def test_squeeze_excite_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"rd_ratio must be a number in \(0, 1\]\. Received: rd_ratio=0"):
        SqueezeExcite(8, rd_ratio=0)
    with pytest.raises(ValueError, match=r"channels must be a positive int\. Received: channels=0"):
        SqueezeExcite(0)


def test_drop_path_eval_is_identity_and_train_keeps_the_mean() -> None:
    drop = DropPath(0.3)
    x = torch.ones(20000, 2)
    assert drop.eval()(x) is x
    y = drop.train()(x)
    kept = (y[:, 0] != 0).float()
    assert torch.equal(y[:, 0], y[:, 1])  # whole samples are dropped
    assert abs(kept.mean().item() - 0.7) < 4 * (0.7 * 0.3 / 20000) ** 0.5
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))


def test_drop_path_batch_mode_drops_everything_or_nothing() -> None:
    drop = DropPath(0.5, mode="batch")
    outcomes = {float(drop(torch.ones(4, 3)).sum()) for _ in range(50)}
    assert outcomes == {0.0, 24.0}


def test_drop_path_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\)\. Received: p=1"):
        DropPath(1)
    with pytest.raises(ValueError, match=r"mode must be one of 'row', 'batch'\. Received: mode='sample'"):
        DropPath(0.1, mode="sample")
    with pytest.raises(InputError, match=r"DropPath expected input of shape \[N, \*\], received \[2\] \(torch.int64\)"):
        DropPath(0.1)(torch.ones(2, dtype=torch.long))


@given(st.sampled_from([0.1, 0.2, 0.4]), st.sampled_from([1, 3, 5]))
def test_drop_block_drops_about_p_and_keeps_the_mean(p: float, block_size: int) -> None:
    drop = DropBlock(p, block_size)
    x = torch.ones(64, 8, 24, 24)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    # Overlapping blocks make the realised rate a little lower than p (Ghiasi et al. 2018).
    assert p * 0.6 < dropped < p * 1.1
    torch.testing.assert_close(y.mean(), torch.tensor(1.0), rtol=1e-5, atol=1e-5)


def test_drop_block_drops_square_regions() -> None:
    torch.manual_seed(3)
    drop = DropBlock(0.05, 3)
    y = drop(torch.ones(1, 1, 30, 30))[0, 0]
    zero = (y == 0).nonzero().tolist()
    assert zero
    r, c = zero[0]  # the first zero (row-major) is the top-left corner of a block
    assert torch.all(y[r : r + 3, c : c + 3] == 0)


def test_drop_block_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match=r"block_size must be a positive int\. Received: block_size=0"):
        DropBlock(0.1, 0)
    with pytest.raises(InputError, match=r"DropBlock expected input of shape \[N, C, H, W\], received \[2, 3, 4\]"):
        DropBlock(0.1, 3)(torch.randn(2, 3, 4))
    assert torch.equal(DropBlock(0.5, 3).eval()(x := torch.randn(2, 3, 4, 4)), x)
