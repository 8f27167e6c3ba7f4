import itertools
import math
from statistics import NormalDist

import pytest
import torch

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


@pytest.mark.parametrize("dtype", [torch.long, torch.int8, torch.uint8, torch.bool, torch.complex64])
@pytest.mark.parametrize("training", [True, False])
def test_drop_path_refuses_non_float_input_in_training_and_eval(dtype: torch.dtype, training: bool) -> None:
    drop = DropPath(0.3).train(training)
    with pytest.raises(InputError, match=rf"received \[4, 3\] \({dtype}\)") as info:
        drop(torch.ones(4, 3).to(dtype))
    if training:  # found when the mask refuses the dtype: torch's own error stays attached
        assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_drop_path_refuses_a_scalar(training: bool, p: float) -> None:
    with pytest.raises(InputError, match=r"DropPath expected input of shape \[N, \*\], received \[\]"):
        DropPath(p).train(training)(torch.tensor(1.0))


def paper_gamma(p: float, block_size: int, feat_size: int, dims: int) -> float:
    """Ghiasi et al. 2018, eq. 1, on a square (cubic) map: gamma = p / bs^d * fs^d / (fs - bs + 1)^d."""
    return p / block_size**dims * feat_size**dims / (feat_size - block_size + 1) ** dims


def expected_drop_fraction(gamma: float, block_size: int, feat_size: int, dims: int) -> float:
    """Exact expected fraction of dropped positions when seeds fall at rate gamma where a whole block fits.

    A position is dropped unless none of the seeds whose block covers it fires. Along one axis, position
    i is covered by the seeds j in [i - bs + 1, i] that are valid (0 <= j <= fs - bs); on a map the counts
    multiply. So the expected fraction is the mean over positions of 1 - (1 - gamma)^covering(position).
    """
    covering = [min(i, feat_size - block_size) - max(0, i - block_size + 1) + 1 for i in range(feat_size)]
    per_position = [math.prod(c) for c in itertools.product(covering, repeat=dims)]
    return sum(1 - (1 - gamma) ** k for k in per_position) / len(per_position)


#: Bonferroni over the cases below: each may fail a correct DropBlock with probability 1e-6 / len(CASES).
DROP_CASES = [  # (p, block_size, feat_size, spatial_dims)
    (0.1, 3, 24, 2),
    (0.1, 5, 24, 2),
    (0.2, 7, 16, 2),
    (0.3, 5, 8, 2),
    (0.1, 4, 12, 1),
    (0.15, 3, 10, 3),
]
DROP_Z = NormalDist().inv_cdf(1 - 1e-6 / len(DROP_CASES) / 2)  # 5.3 standard errors


@pytest.mark.parametrize(("p", "block_size", "feat_size", "dims"), DROP_CASES)
def test_drop_block_drops_the_fraction_the_papers_gamma_gives(
    p: float, block_size: int, feat_size: int, dims: int
) -> None:
    """The realised drop fraction matches the paper's gamma to a few standard errors, and refuses the
    uncorrected gamma = p / block_size^d (which drops too little as soon as block_size > 1)."""
    maps = 2**22 // feat_size**dims  # 4M positions: enough independent maps for a tight bound, at every size
    x = torch.ones(maps, 1, *[feat_size] * dims)
    y = DropBlock(p, block_size, spatial_dims=dims)(x)
    per_map = (y == 0).flatten(1).double().mean(1)  # maps draw their seeds independently
    measured = per_map.mean().item()
    bound = DROP_Z * per_map.std().item() / math.sqrt(maps)  # Z standard errors of the mean of the maps
    expected = expected_drop_fraction(paper_gamma(p, block_size, feat_size, dims), block_size, feat_size, dims)
    uncorrected = expected_drop_fraction(p / block_size**dims, block_size, feat_size, dims)
    assert expected - uncorrected > 2 * bound, "the test could not tell the paper's gamma from the uncorrected one"
    assert abs(measured - expected) <= bound, (measured, expected, bound)
    torch.testing.assert_close(y.mean(), torch.tensor(1.0), rtol=1e-5, atol=1e-5)  # the kept values are rescaled


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_drop_block_rescales_low_precision_maps_larger_than_float16_can_count(dtype: torch.dtype) -> None:
    # 4 x 16 x 32 x 32 = 65536 positions: more than float16's largest finite value (65504)
    torch.manual_seed(0)
    y = DropBlock(0.3, 5)(torch.ones(4, 16, 32, 32, dtype=dtype))
    kept = (y != 0).double().mean().item()
    assert y.isfinite().all()
    assert 0.6 < kept < 0.9
    # every kept value is the rescaling 1 / kept fraction, rounded to the dtype once
    expected = torch.tensor(1 / kept, dtype=torch.float64).to(dtype)
    assert torch.all(y[y != 0] == expected)


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


@pytest.mark.parametrize(("p", "block_size", "size"), [(0.1, 3, 8), (0.3, 5, 12), (0.2, 7, 9)])
def test_drop_block_matches_torchvisions_drop_block2d_from_the_same_seed(p: float, block_size: int, size: int) -> None:
    """For odd blocks that fit, the paper's construction is torchvision's: the same seeds from the same
    generator state, the same regions and the same rescaling (torchvision adds 1e-6 to the count)."""
    from torchvision.ops import drop_block2d

    x = torch.randn(2, 4, size, size)
    torch.manual_seed(7)
    ours = DropBlock(p, block_size)(x)
    torch.manual_seed(7)
    theirs = drop_block2d(x, p, block_size)
    assert torch.equal(ours == 0, theirs == 0)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=0)


def test_drop_block_that_drops_everything_returns_zeros() -> None:
    # block_size = map size: one seed position per map, drawn with gamma = p * 49 / (49 * 1) = p, and its block
    # covers the map; so with probability p^6 (1 - 6e-6 here) all 6 maps are dropped and no position is kept
    torch.manual_seed(0)
    y = DropBlock(1 - 1e-6, 7)(torch.ones(2, 3, 7, 7))
    assert torch.equal(y, torch.zeros_like(y))  # zeros, not 0 * inf = NaN


def test_drop_block_gradient_is_the_rescaled_mask() -> None:
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    torch.manual_seed(5)
    y = DropBlock(0.3, 3)(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert x.grad is not None
    torch.testing.assert_close(x.grad, kept.float() * (kept.numel() / kept.sum()))
