"""The records ``init_weights`` leaves: fingerprints by every path, and the draws they record.

The fingerprint takes one of three paths by size (one product for a few elements, a float64 copy of
the whole, blocks of rows through a kept buffer); the block sizes are shrunk here so that small
tensors take every path. Each result is checked against the documented sums computed naively.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import blockzoo
from blockzoo import init_report, init_weights
from blockzoo.init import _records, initializer, param_generator
from blockzoo.init._records import constant_fingerprint, fingerprint, same_values


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of at most 64 elements; up to 8 elements take the single product, up to 16 the whole copy."""
    monkeypatch.setattr(_records, "_CHUNK", 64)
    monkeypatch.setattr(_records, "_WHOLE", 16)
    monkeypatch.setattr(_records, "_SMALL", 8)


def documented_sums(tensor: torch.Tensor) -> torch.Tensor:
    """The fingerprint as its docstring states it, element by element in Python floats summed with fsum."""
    values = tensor.detach().reshape(tensor.shape[0] if tensor.dim() else 1, -1).double().tolist()
    squares = math.fsum(v * v for row in values for v in row)
    rows = math.fsum((i + 1) * v for i, row in enumerate(values) for v in row)
    cols = math.fsum((j + 1) * v for row in values for j, v in enumerate(row))
    return torch.tensor([squares, rows, cols], dtype=torch.float64)


def tensors() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    conv = torch.randn(11, 3, 2, 2, generator=g)  # 12 elements a row: blocks of 5, 5 and 1 rows
    return [
        ("scalar", torch.tensor(0.75)),
        ("few", torch.randn(5, generator=g)),
        ("vector, whole copy", torch.randn(13, generator=g)),
        ("vector, blocks", torch.randn(301, generator=g)),
        ("matrix, uneven last block", torch.randn(23, 10, generator=g)),
        ("conv", conv),
        ("conv, channels_last", conv.to(memory_format=torch.channels_last)),
        ("transposed view", torch.randn(30, 7, generator=g).T),
        ("bfloat16", torch.randn(20, 9, generator=g).bfloat16()),
        ("float64", torch.randn(17, 6, generator=g, dtype=torch.float64)),
        ("a row longer than a block", torch.randn(3, 100, generator=g)),
    ]


@pytest.mark.parametrize(("label", "tensor"), tensors(), ids=[label for label, _ in tensors()])
@pytest.mark.usefixtures("small_blocks")
def test_fingerprint_is_the_documented_sums_by_every_path(label: str, tensor: torch.Tensor) -> None:
    got = fingerprint(tensor)
    assert got is not None
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, documented_sums(tensor), rtol=1e-13, atol=1e-13)


@pytest.mark.usefixtures("small_blocks")
def test_fingerprint_by_blocks_sees_a_changed_value_and_moved_rows() -> None:
    weight = torch.randn(23, 10, generator=torch.Generator().manual_seed(1))
    saved = fingerprint(weight)
    assert same_values(saved, weight.clone())
    assert same_values(saved, weight.clone().contiguous(memory_format=torch.contiguous_format))
    changed = weight.clone()
    changed[-1, -1] += 1e-3  # in the last, shorter block
    assert not same_values(saved, changed)
    swapped = weight.clone()
    swapped[[0, 22]] = swapped[[22, 0]]  # rows in the first and the last block
    assert not same_values(saved, swapped)
    assert not same_values(saved, weight.flip(1))


@pytest.mark.parametrize("shape", [(), (1,), (7,), (300,), (4, 9), (23, 10), (8, 3, 3, 3)])
@pytest.mark.parametrize("value", [0.0, 1.0])
@pytest.mark.usefixtures("small_blocks")
def test_constant_fingerprint_equals_reading_the_values(shape: tuple[int, ...], value: float) -> None:
    tensor = torch.full(shape, value)
    assert torch.equal(constant_fingerprint(value, tensor), documented_sums(tensor))
    assert torch.equal(constant_fingerprint(value, tensor), fingerprint(tensor))


def test_constant_fingerprint_is_none_without_values() -> None:
    assert constant_fingerprint(0.0, torch.empty(3, 0)) is None
    assert constant_fingerprint(1.0, torch.empty(4, device="meta")) is None
    assert constant_fingerprint(1.0, torch.ones(4, dtype=torch.int64)) is None


Draw = Callable[[torch.Tensor], torch.Tensor]


def cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def expected_by_hand(model: nn.Module, draw: dict[str, Draw]) -> dict[str, torch.Tensor]:
    """Weights drawn straight from ``torch.nn.init``; biases zero, norm weights one."""
    out = {}
    for name, p in model.named_parameters():
        if name in draw:
            out[name] = draw[name](torch.empty_like(p))
        elif name == "1.weight":
            out[name] = torch.ones_like(p)
        else:
            out[name] = torch.zeros_like(p)
    return out


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.usefixtures("small_blocks")
def test_seeded_draws_equal_torch_init_with_the_same_generators(seed: int) -> None:
    model = cnn()
    init_weights(model, initializer("kaiming_normal", mode="fan_out", nonlinearity="relu"), seed=seed)

    def kaiming(name: str) -> Draw:
        return lambda t: nn.init.kaiming_normal_(
            t, mode="fan_out", nonlinearity="relu", generator=param_generator(seed, name)
        )

    expected = expected_by_hand(model, {n: kaiming(n) for n in ("0.weight", "3.weight", "6.weight")})
    for name, p in model.named_parameters():
        assert torch.equal(p, expected[name]), name
    assert {row.status for row in init_report(model)} == {"initialized"}


@pytest.mark.usefixtures("small_blocks")
def test_default_draws_from_one_generator_equal_torch_init_in_parameter_order() -> None:
    model = cnn()
    init_weights(model, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    draws: dict[str, Draw] = {  # conv-BN-ReLU and conv-ReLU: He with fan_in; the last linear layer: Glorot
        "0.weight": lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g),
        "3.weight": lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g),
        "6.weight": lambda t: nn.init.xavier_uniform_(t, generator=g),
    }
    expected = expected_by_hand(model, draws)
    for name, p in model.named_parameters():
        assert torch.equal(p, expected[name]), name
    report = init_report(model)
    assert {row.status for row in report} == {"initialized"}
    with torch.no_grad():
        model[3].weight[-1, -1, -1, -1] += 1e-3
        model[1].bias[0] = 0.5
    modified = {row.name for row in init_report(model) if row.status == "modified"}
    assert modified == {"3.weight", "1.bias"}


def test_records_made_under_fake_tensors_leave_nothing_that_breaks_a_real_build() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():  # as torch.export and torch.compile trace: small and large weights, both fingerprint paths
        blockzoo.MLP(7, (9,), 3)
        blockzoo.MLP(700, (900,), 3)
    real = blockzoo.MLP(700, (900,), 3)
    assert {row.status for row in blockzoo.init_report(real)} == {"initialized"}
