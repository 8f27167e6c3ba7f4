"""benchmarks._kernels: the kernels one call runs, and whether one side runs no more than another."""

from __future__ import annotations

from collections import Counter

import torch
from benchmarks._kernels import kernels, runs_no_more
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

OPS = st.sampled_from(["aten::add", "aten::add_", "aten::clamp_min", "aten::clamp_min_", "aten::mm"])
SHAPES = st.sampled_from(["[[2, 3], [2, 3]]", "[[4], []]"])
KERNELS = st.lists(st.tuples(OPS, SHAPES), max_size=8).map(Counter)


@given(KERNELS, KERNELS)
def test_a_reference_that_runs_more_still_covers_ours(ours: Counter, extra: Counter) -> None:
    assert runs_no_more(ours, ours + extra)


@given(KERNELS, KERNELS)
def test_ours_running_more_kernels_than_the_reference_never_passes(ref: Counter, extra: Counter) -> None:
    if sum(extra.values()):
        assert not runs_no_more(ref + extra, ref)


def test_in_place_stands_for_out_of_place_and_not_the_other_way() -> None:
    out_of_place = Counter({("aten::clamp_min", "[[2, 3], []]"): 1})
    in_place = Counter({("aten::clamp_min_", "[[2, 3], []]"): 1})
    assert runs_no_more(in_place, out_of_place)
    assert not runs_no_more(out_of_place, in_place)
    assert not runs_no_more(in_place, Counter({("aten::clamp_min", "[[3, 2], []]"): 1}))  # other shapes


def test_kernels_are_the_leaf_ops_of_forward_and_backward() -> None:
    x = torch.randn(4, 8)

    def relu(inplace: bool) -> Counter:
        layer = nn.Sequential(nn.Linear(8, 8), nn.ReLU(inplace=inplace))
        return kernels(lambda: layer(x.clone().requires_grad_(True)).sum().backward())

    in_place, out_of_place = relu(True), relu(False)
    names = {name for name, _ in in_place}
    assert "aten::clamp_min_" in names
    assert "aten::threshold_backward" in names
    assert "aten::relu_" not in names  # relu_ dispatches to clamp_min_: only the op that does the work counts
    assert runs_no_more(in_place, out_of_place)
    assert not runs_no_more(out_of_place, in_place)
    doubled = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    more = kernels(lambda: (doubled(x.clone().requires_grad_(True)) * 2).sum().backward())
    assert not runs_no_more(more, out_of_place)
