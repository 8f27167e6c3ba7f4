"""Data to batches: EpochSampler's laws, identical batches from tensors and Datasets, to_device, check_data."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from blockzoo.data import Split
from blockzoo.train._batches import Batches, EpochSampler, call_model, check_data, split_parts, to_device


class Pairs(Dataset[tuple[Tensor, Tensor]]):
    """A plain Dataset, read sample by sample through a DataLoader."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.y[i]


def tensors(n: int) -> tuple[Tensor, Tensor]:
    return torch.arange(n * 3, dtype=torch.float32).reshape(n, 3), torch.arange(n) % 4


def as_lists(batches: Any) -> list[tuple[list[Any], ...]]:
    return [tuple(t.tolist() for t in batch) for batch in batches]


# -------------------------------------------------------------- EpochSampler

lengths = st.integers(1, 40)
seeds = st.integers(0, 2**31)
epochs = st.integers(0, 50)


@given(lengths, seeds, epochs)
def test_each_epoch_is_a_permutation(n: int, seed: int, epoch: int) -> None:
    sampler = EpochSampler(n, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    assert sorted(sampler) == list(range(n))
    assert len(sampler) == n


@given(lengths, seeds, epochs)
def test_same_seed_and_epoch_same_order(n: int, seed: int, epoch: int) -> None:
    a, b = EpochSampler(n, shuffle=True, seed=seed), EpochSampler(n, shuffle=True, seed=seed)
    a.set_epoch(epoch)
    b.set_epoch(0)
    list(b)  # drawing an epoch leaves no state behind
    b.set_epoch(epoch)
    assert list(a) == list(b)


@given(st.integers(10, 40), seeds, epochs)
def test_epochs_are_shuffled_differently(n: int, seed: int, epoch: int) -> None:
    sampler = EpochSampler(n, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    first = list(sampler)
    sampler.set_epoch(epoch + 1)
    assert list(sampler) != first  # the same order twice has probability 1/n! < 3e-7


@given(lengths, seeds, epochs, st.data())
def test_start_skips_exactly_the_first_indices(n: int, seed: int, epoch: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, n))
    sampler = EpochSampler(n, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    full = list(sampler)
    sampler.set_epoch(epoch, start=start)
    assert list(sampler) == full[start:]
    assert len(sampler) == n - start


def test_without_shuffle_the_order_is_the_data_order() -> None:
    sampler = EpochSampler(7, shuffle=False, seed=3)
    sampler.set_epoch(5, start=2)
    assert list(sampler) == [2, 3, 4, 5, 6]


def test_order_depends_only_on_seed_plus_epoch() -> None:
    # the convention of torch's DistributedSampler: a generator seeded with seed + epoch
    a, b = EpochSampler(20, shuffle=True, seed=10), EpochSampler(20, shuffle=True, seed=7)
    a.set_epoch(0)
    b.set_epoch(3)
    assert list(a) == list(b)


# ------------------------------------------------------------------- Batches


@given(st.integers(1, 30), st.integers(1, 8), seeds, st.integers(0, 3), st.data())
def test_tensors_and_a_dataset_give_identical_batches(
    n: int, batch_size: int, seed: int, epoch: int, data: st.DataObject
) -> None:
    x, y = tensors(n)
    from_tensors = Batches((x, y), batch_size=batch_size, shuffle=True, seed=seed)
    from_dataset = Batches(Pairs(x, y), batch_size=batch_size, shuffle=True, seed=seed)
    skip = data.draw(st.integers(0, from_tensors.num_batches()))
    assert from_tensors.num_batches() == from_dataset.num_batches() == -(-n // batch_size)
    assert len(from_tensors) == len(from_dataset) == n
    full = as_lists(from_tensors.epoch(epoch))
    assert as_lists(from_dataset.epoch(epoch)) == full
    assert as_lists(from_tensors.epoch(epoch, skip=skip)) == full[skip:]
    assert as_lists(from_dataset.epoch(epoch, skip=skip)) == full[skip:]
    # every sample once per epoch
    assert sorted(v for batch in full for v in batch[1]) == sorted(y.tolist())


@pytest.mark.parametrize("kind", ["tensors", "dataset"])
def test_skipping_every_batch_leaves_none(kind: str) -> None:
    x, y = tensors(10)
    batches = Batches((x, y) if kind == "tensors" else Pairs(x, y), batch_size=4, shuffle=True, seed=0)
    assert list(batches.epoch(2, skip=3)) == []  # not one empty batch


@pytest.mark.parametrize("kind", ["tensors", "dataset"])
def test_resume_after_a_stop_at_the_end_of_an_epoch(tmp_path: Any, kind: str) -> None:
    # Ctrl-C after an epoch's last batch saves position (epoch, batch=all of them); the resumed run
    # used to train on an empty batch there and stop with a NaN loss.
    from blockzoo.train import Callback, fit
    from blockzoo.train._guards import interrupt_guard

    x, y = tensors(30)  # batches of 8, 8, 8 and 6
    x = x / x.max()
    data: Any = (x, y) if kind == "tensors" else Pairs(x, y)
    start = torch.nn.Linear(3, 4).state_dict()

    def model() -> torch.nn.Linear:
        m = torch.nn.Linear(3, 4)
        m.load_state_dict(start)
        return m

    class CtrlCAtTheLastBatch(Callback):
        def on_batch_end(self, trainer: Any, batch: int, output: Any) -> None:
            if trainer.epoch == 1 and batch == 3:
                interrupt_guard.requested = True  # what the SIGINT handler does

    options: dict[str, Any] = {"epochs": 2, "batch_size": 8, "progress": False, "seed": 0}
    with pytest.raises(KeyboardInterrupt):
        fit(model(), data, callbacks=[CtrlCAtTheLastBatch()], out_dir=tmp_path, **options)
    resumed = fit(model(), data, resume=tmp_path, **options)
    assert resumed["train_loss"] == fit(model(), data, **options)["train_loss"]


def test_a_tensor_dataset_is_read_as_tensors() -> None:
    x, y = tensors(10)
    batches = Batches(TensorDataset(x, y), batch_size=4, shuffle=False, seed=0)
    assert batches.tensors is not None
    assert batches.loader is None
    assert [len(b[0]) for b in batches.epoch(0)] == [4, 4, 2]


def test_a_users_dataloader_is_used_as_it_is_and_replayed_to_skip() -> None:
    x, y = tensors(10)
    loader = DataLoader(TensorDataset(x, y), batch_size=3, shuffle=False)
    batches = Batches(loader, batch_size=64, shuffle=True, seed=0)
    assert batches.batch_size == 3
    assert batches.num_batches() == 4
    assert len(batches) == 10
    full = as_lists(batches.epoch(0))
    assert full == as_lists(loader)
    assert as_lists(batches.epoch(1, skip=2)) == full[2:]


def test_generator_state_round_trip() -> None:
    batches = Batches(Pairs(*tensors(8)), batch_size=2, shuffle=True, seed=5)
    state = batches.state_dict()
    batches.generator.manual_seed(99)
    batches.load_state_dict(state)
    assert torch.equal(
        batches.generator.get_state(),
        Batches(Pairs(*tensors(8)), batch_size=2, shuffle=True, seed=5).generator.get_state(),
    )


def test_a_dataset_without_len() -> None:
    class Stream(torch.utils.data.IterableDataset[Tensor]):
        def __iter__(self) -> Any:
            return iter([torch.zeros(2)])

    with pytest.raises(TypeError, match=r"the data set has no len\(\)"):
        Batches(Stream(), batch_size=2, shuffle=False, seed=0)


# ------------------------------------------------------------------ to_device


class Pair(NamedTuple):
    inputs: Any
    target: Tensor


def test_to_device_moves_every_tensor_and_keeps_the_containers() -> None:
    x = torch.ones(2, 3)
    batch = Pair(inputs={"image": x, "extra": [x, (x, "label")]}, target=torch.zeros(2))
    moved = to_device(batch, torch.device("meta"))
    assert type(moved) is Pair
    assert moved.inputs["image"].device.type == "meta"
    assert moved.target.device.type == "meta"
    assert isinstance(moved.inputs["extra"], list)
    assert isinstance(moved.inputs["extra"][1], tuple)
    assert moved.inputs["extra"][0].device.type == "meta"
    assert moved.inputs["extra"][1][0].device.type == "meta"
    assert moved.inputs["extra"][1][1] == "label"
    assert moved.inputs["image"].shape == (2, 3)
    assert to_device(3, torch.device("meta")) == 3


def test_call_model_unpacks_inputs() -> None:
    def model(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return args, kwargs

    x = torch.zeros(1)
    assert call_model(model, x) == ((x,), {})
    assert call_model(model, (x, x)) == ((x, x), {})
    assert call_model(model, [x]) == ((x,), {})
    assert call_model(model, {"a": x}) == ((), {"a": x})


# ---------------------------------------------------------- check_data, split


def test_check_data_accepts_what_fit_reads() -> None:
    x, y = tensors(4)
    assert check_data([x, y], "data") == (x, y)
    assert check_data((x,), "data") == (x,)
    split = Split(x, y, x, y)
    assert check_data(split, "data") is split
    dataset = TensorDataset(x, y)
    assert check_data(dataset, "data") is dataset
    loader = DataLoader(dataset)
    assert check_data(loader, "data") is loader


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (
            (torch.zeros(3, 2), torch.zeros(2)),
            ValueError,
            r"train_data: the tensors must have one length \(samples first\). Received: train_data with lengths \[3, 2\]",
        ),
        (
            (torch.zeros(0, 2), torch.zeros(0)),
            ValueError,
            r"train_data: the data set is empty. Received: train_data with 0 samples",
        ),
        (
            (torch.tensor(1.0), torch.tensor(0)),
            ValueError,
            r"train_data: every tensor needs a first dimension of samples. Received: train_data with shapes \[\(\), \(\)\]",
        ),
        ((), TypeError, r"train_data must be an \(inputs, targets\) pair of tensors.*Received: train_data=tuple"),
        ((torch.zeros(2), [0, 1]), TypeError, r"Received: train_data=tuple"),
        ("digits", TypeError, r"Received: train_data=str"),
        (None, TypeError, r"Received: train_data=NoneType"),
    ],
)
def test_check_data_errors(data: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_data(data, "train_data")


def test_split_parts() -> None:
    a, b = tensors(4), tensors(6)
    split = Split(a[0], a[1], b[0], b[1])
    train, val = split_parts(split, None)
    assert train == (a[0], a[1])
    assert val == (b[0], b[1])
    other = tensors(2)
    assert split_parts(split, other)[1] is other  # an explicit val_data wins
    assert split_parts(other, split) == (other, (b[0], b[1]))  # a Split as val_data gives its validation part
    assert split_parts(other, None) == (other, None)
