"""benchmarks._kernels: the aten ops one call runs, and whether one side runs no more than another."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from benchmarks import bench_blocks
from benchmarks._kernels import ops, runs_no_more
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

NAMES = st.sampled_from(["aten::add", "aten::add_", "aten::clamp_min", "aten::clamp_min_", "aten::mm"])
SHAPES = st.sampled_from(["[[2, 3], [2, 3]]", "[[4], []]"])
ARGS = st.sampled_from(["[None, None]", "[None, 0]"])
OPS = st.lists(st.tuples(NAMES, SHAPES, ARGS), max_size=8).map(Counter)


@given(OPS, OPS)
def test_a_reference_that_runs_more_still_covers_ours(ours: Counter, extra: Counter) -> None:
    assert runs_no_more(ours, ours + extra)


@given(OPS, OPS)
def test_ours_running_more_ops_than_the_reference_never_passes(ref: Counter, extra: Counter) -> None:
    if sum(extra.values()):
        assert not runs_no_more(ref + extra, ref)


def test_in_place_stands_for_out_of_place_and_not_the_other_way() -> None:
    out_of_place = Counter({("aten::clamp_min", "[[2, 3], []]", "[None, 0]"): 1})
    in_place = Counter({("aten::clamp_min_", "[[2, 3], []]", "[None, 0]"): 1})
    assert runs_no_more(in_place, out_of_place)
    assert not runs_no_more(out_of_place, in_place)
    assert not runs_no_more(in_place, Counter({("aten::clamp_min", "[[3, 2], []]", "[None, 0]"): 1}))  # shapes
    assert not runs_no_more(in_place, Counter({("aten::clamp_min", "[[2, 3], []]", "[None, 1]"): 1}))  # arguments


def _train_ops(module: nn.Module, x: torch.Tensor) -> Counter:
    def step() -> None:
        module(x.clone().requires_grad_(True)).sum().backward()

    step()  # as in the benchmarks, after the first call: the weights' gradients exist and are accumulated into
    return ops(step)


def test_an_in_place_activation_runs_no_more_than_an_out_of_place_one() -> None:
    x = torch.randn(4, 8)
    in_place = _train_ops(nn.Sequential(nn.Linear(8, 8), nn.ReLU(inplace=True)), x)
    out_of_place = _train_ops(nn.Sequential(nn.Linear(8, 8), nn.ReLU()), x)
    assert runs_no_more(in_place, out_of_place)
    assert not runs_no_more(out_of_place, in_place)
    more = _train_ops(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Hardtanh()), x)
    assert not runs_no_more(more, out_of_place)


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        (nn.Conv2d(8, 8, 7, padding=3), nn.Conv2d(8, 8, 3, padding=1)),  # a bigger kernel: other weight shapes
        (nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8)),  # dense against depthwise
        (nn.MaxPool2d(5, 1, 2), nn.MaxPool2d(3, 1, 1)),
        (nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()), nn.Conv2d(8, 8, 3, padding=1)),  # one more op
    ],
)
def test_more_work_with_the_same_shapes_is_not_the_same_kernels(ours: nn.Module, reference: nn.Module) -> None:
    x = torch.randn(2, 8, 6, 6)
    assert runs_no_more(_train_ops(reference, x), _train_ops(reference, x))
    assert not runs_no_more(_train_ops(ours, x), _train_ops(reference, x))


def test_an_allocation_is_one_whichever_factory_makes_it() -> None:
    x = torch.randn(4, 3)
    by_new_empty = ops(lambda: x.new_empty((4, 1)).bernoulli_(0.5))
    by_empty = ops(lambda: torch.empty((4, 1), dtype=x.dtype, device=x.device).bernoulli_(0.5))
    assert runs_no_more(by_new_empty, by_empty)
    assert runs_no_more(by_empty, by_new_empty)
    assert not runs_no_more(ops(lambda: x.new_empty((8, 1)).bernoulli_(0.5)), by_empty)  # another size


def test_only_the_realistic_eager_rows_say_whether_the_kernels_are_the_same(monkeypatch) -> None:
    monkeypatch.setattr(bench_blocks, "SHAPES", {"small": (1, 16, 8, 8), "realistic": (2, 16, 8, 8)})

    def once(fns: dict, **_: object) -> dict[str, list[float]]:
        for fn in fns.values():  # each side called once, as the warm-up does
            fn()
        return {name: [1.0] for name in fns}

    monkeypatch.setattr(bench_blocks, "alternate", once)
    block = {b.name: b for b in bench_blocks.blocks()}["MLP"]
    rows = {
        shape: bench_blocks.measure(block, shape=shape, backward=True, rounds=1, min_run_time=0)
        for shape in ("small", "realistic")
    }
    assert {r.same_kernels for r in rows["small"]} == {None}
    # MLP's training forward flattens the tokens before its ReLU: other shapes than the references'
    assert {r.case.rsplit(" ", 1)[-1]: r.same_kernels for r in rows["realistic"]} == dict.fromkeys(block.refs, False)
    convs = {b.name: b for b in bench_blocks.blocks()}["ConvNormAct"]
    realistic = bench_blocks.measure(convs, shape="realistic", backward=False, rounds=1, min_run_time=0)
    assert all(r.same_kernels is True for r in realistic)
