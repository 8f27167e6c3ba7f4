"""Losses by name, the built-in metrics, and MetricState's sums over batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from blockzoo.errors import UnknownNameError
from blockzoo.train._metrics import MetricState, resolve_loss, resolve_metrics


def logits_and_labels(n: int = 12, classes: int = 7, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, classes, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


# -------------------------------------------------------------------- losses


def test_named_losses() -> None:
    logits, y = logits_and_labels()
    assert torch.equal(resolve_loss("cross_entropy")(logits, y), F.cross_entropy(logits, y))
    log_probs = F.log_softmax(logits, dim=1)
    assert torch.equal(resolve_loss("nll")(log_probs, y), F.nll_loss(log_probs, y))
    assert torch.equal(
        resolve_loss("cross_entropy", label_smoothing=0.2)(logits, y), F.cross_entropy(logits, y, label_smoothing=0.2)
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.05, 0.1, 0.5, 0.9])
def test_nll_label_smoothing_equals_cross_entropys(smoothing: float) -> None:
    logits, y = logits_and_labels(n=20, classes=5, seed=3)
    ours = resolve_loss("nll", label_smoothing=smoothing)(F.log_softmax(logits, dim=1), y)
    torchs = F.cross_entropy(logits, y, label_smoothing=smoothing)
    torch.testing.assert_close(ours, torchs)


def test_a_callable_loss_is_used_as_it_is() -> None:
    def l1(output: Tensor, target: Tensor) -> Tensor:
        return (output - target).abs().mean()

    assert resolve_loss(l1) is l1


def test_loss_errors() -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown loss 'cross_entrpy'. Did you mean 'cross_entropy'\?"):
        resolve_loss("cross_entrpy")
    with pytest.raises(TypeError, match=r"loss must be 'cross_entropy', 'nll' or a callable.*Received: loss=3"):
        resolve_loss(3)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"label_smoothing applies to the named losses only.*Received: label_smoothing=0.1"
    ):
        resolve_loss(F.mse_loss, label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"label_smoothing must be .*Received: label_smoothing=1"):
        resolve_loss("cross_entropy", label_smoothing=1)
    with pytest.raises(ValueError, match=r"label_smoothing must be .*Received: label_smoothing=nan"):
        resolve_loss("nll", label_smoothing=math.nan)


# ------------------------------------------------------------------- metrics


def direct_topk(output: Tensor, target: Tensor, k: int) -> int:
    """Samples whose class is among the k largest outputs, one at a time."""
    count = 0
    for row, label in zip(output.tolist(), target.tolist(), strict=True):
        # the label's rank: how many outputs are larger than its own
        count += sum(v > row[label] for v in row) < k
    return count


def test_accuracy_and_top5_count_correct_samples() -> None:
    logits, y = logits_and_labels(n=50, classes=9, seed=1)
    metrics = resolve_metrics(["accuracy", "top5_accuracy"])
    (accuracy, counts), (top5, counts5) = metrics["accuracy"], metrics["top5_accuracy"]
    assert counts
    assert counts5
    assert int(accuracy(logits, y)) == direct_topk(logits, y, 1)
    assert int(top5(logits, y)) == direct_topk(logits, y, 5)


def test_top5_with_fewer_than_five_classes_counts_everything() -> None:
    logits, y = logits_and_labels(n=10, classes=3)
    assert int(resolve_metrics(["top5_accuracy"])["top5_accuracy"][0](logits, y)) == 10


def test_soft_targets_count_their_argmax() -> None:
    logits, y = logits_and_labels(n=30, classes=4, seed=2)
    soft = 0.7 * F.one_hot(y, 4).double() + 0.3 * torch.full((30, 4), 0.25, dtype=torch.float64)
    accuracy = resolve_metrics(["accuracy"])["accuracy"][0]
    assert int(accuracy(logits, soft)) == direct_topk(logits, y, 1)


def test_callables_and_dicts() -> None:
    def mae(output: Tensor, target: Tensor) -> Tensor:
        return (output.argmax(1) - target).abs().float().mean()

    assert resolve_metrics([mae]) == {"mae": (mae, False)}
    assert resolve_metrics({"err": mae}) == {"err": (mae, False)}


def test_metric_errors() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"Unknown metric 'acuracy'. Did you mean 'accuracy', 'top5_accuracy'\? blockzoo.train.list_metrics\(\) lists them all",
    ):
        resolve_metrics(["acuracy"])
    with pytest.raises(TypeError, match=r"metrics must be a list of names .*Received: metrics='accuracy'"):
        resolve_metrics("accuracy")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"metric 'x' must be a name or a callable. Received: 3"):
        resolve_metrics({"x": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"'loss' is always recorded.*Received: metrics="):
        resolve_metrics({"loss": F.l1_loss})


# --------------------------------------------------------------- MetricState


@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(0, 2**16))
def test_sums_over_uneven_batches_equal_whole_set_means(sizes: list[int], seed: int) -> None:
    logits, y = logits_and_labels(n=sum(sizes), classes=6, seed=seed)

    def spread(output: Tensor, target: Tensor) -> Tensor:  # a batch-mean metric
        return output.std(dim=1).mean()

    state = MetricState(resolve_metrics(["accuracy", "top5_accuracy", spread]))
    for out, target in zip(logits.split(sizes), y.split(sizes), strict=True):
        state.update(F.cross_entropy(out, target), out, target, len(target))
    values = state.compute()
    assert state.count == len(y)
    assert values["loss"] == pytest.approx(F.cross_entropy(logits, y).item())
    assert values["accuracy"] == pytest.approx(direct_topk(logits, y, 1) / len(y))
    assert values["top5_accuracy"] == pytest.approx(direct_topk(logits, y, 5) / len(y))
    assert values["spread"] == pytest.approx(logits.std(dim=1).mean().item())


def test_confusion_matrix_counts_pairs() -> None:
    logits, y = logits_and_labels(n=40, classes=4, seed=5)
    state = MetricState({}, num_classes=4)
    for out, target in zip(logits.split(15), y.split(15), strict=True):
        state.update(None, out, target, len(target))
    expected = torch.zeros(4, 4, dtype=torch.int64)
    for true, pred in zip(y.tolist(), logits.argmax(1).tolist(), strict=True):
        expected[true, pred] += 1
    assert state.confusion is not None
    assert torch.equal(state.confusion, expected)


def test_loss_only_and_nothing_seen() -> None:
    state = MetricState(resolve_metrics(["accuracy"]))
    assert state.compute() == {}
    state.update(torch.tensor(2.0), None, None, 4)
    state.update(torch.tensor(1.0), None, None, 2)
    assert state.compute() == {"loss": pytest.approx(10 / 6)}


def test_state_dict_round_trip_continues_the_sums() -> None:
    logits, y = logits_and_labels(n=20, classes=3)
    whole = MetricState(resolve_metrics(["accuracy"]))
    first = MetricState(resolve_metrics(["accuracy"]))
    for i, (out, target) in enumerate(zip(logits.split(7), y.split(7), strict=True)):
        whole.update(F.cross_entropy(out, target), out, target, len(target))
        if i == 0:
            first.update(F.cross_entropy(out, target), out, target, len(target))
            resumed = MetricState(resolve_metrics(["accuracy"]))
            resumed.load_state_dict(first.state_dict(), torch.device("cpu"))
        else:
            resumed.update(F.cross_entropy(out, target), out, target, len(target))
    assert resumed.compute() == whole.compute()
