"""What ``fit`` accepts as data, and the batches it draws from it, in an order that a resumed run can repeat."""

from __future__ import annotations

import random
import signal
from collections.abc import Callable, Iterator, Mapping, Sized
from typing import Any, TypeAlias

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from blockzoo.data import Split

__all__ = [
    "Batches",
    "DataLike",
    "EpochSampler",
    "call_model",
    "check_data",
    "seed_everything",
    "seed_worker",
    "split_parts",
    "to_device",
]

#: What ``fit``, ``evaluate`` and ``predict`` take as data.
DataLike: TypeAlias = "tuple[Tensor, Tensor] | list[Tensor] | Dataset[Any] | DataLoader[Any] | Split"


class EpochSampler(Sampler[int]):
    """Indices in an order fixed by ``(seed, epoch)``, that can start part-way through an epoch.

    The permutation of epoch ``e`` comes from a generator seeded with
    ``seed + e`` (as :class:`torch.utils.data.DistributedSampler` does), so it
    needs no state beyond the two numbers and a resumed run draws the same
    order. ``start`` skips the indices that an interrupted run already used.
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int) -> None:
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        """Use the order of ``epoch``, beginning at its ``start``-th index."""
        self.epoch = epoch
        self.start = start

    def order(self) -> Tensor:
        """This epoch's indices from ``start`` on."""
        if not self.shuffle:
            return torch.arange(self.start, self.length)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.length, generator=generator)[self.start :]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return self.length - self.start


class Batches:
    """The batches of one data source, epoch by epoch.

    Tensors (a pair, a :class:`~blockzoo.data.Split` part or a
    :class:`~torch.utils.data.TensorDataset`) are indexed a whole batch at a
    time, as a hand-written loop does; any other ``Dataset`` goes through a
    ``DataLoader`` over the same :class:`EpochSampler`, so both give the same
    batches in the same order. A ``DataLoader`` given by the user is used as it
    is; a resumed run replays its first batches to skip them.
    """

    def __init__(
        self,
        data: Any,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        rank: int = 0,
        world_size: int = 1,
        fill: bool = False,
    ) -> None:
        self.rank, self.world_size = rank, world_size
        #: validation: a process whose share of the last batch is empty runs one sample it does not count (FSDP2
        #: needs every process in each forward); training: such a last batch is left out
        self.fill = fill
        #: the positions of this epoch's batches that are such fillers
        self.fillers: set[int] = set()
        self.loader: DataLoader[Any] | None = data if isinstance(data, DataLoader) else None
        self.tensors: tuple[Tensor, ...] | None = None
        self.dataset: Dataset[Any] | None = None
        self.sampler: EpochSampler | None = None
        #: worker seeds: each process's own (seed + rank), as its random numbers are; the order shares ``seed``
        self.generator = torch.Generator().manual_seed(seed + rank)
        if self.loader is not None:
            self.batch_size = self.loader.batch_size or 1
            return
        self.batch_size = batch_size
        if isinstance(data, TensorDataset):
            self.tensors = tuple(data.tensors)
        elif isinstance(data, Dataset):
            self.dataset = data
        else:
            self.tensors = tuple(data)
        self.sampler = EpochSampler(len(self), shuffle=shuffle, seed=seed)
        if self.dataset is not None and world_size > 1:
            self.loader = DataLoader(
                self.dataset,
                batch_sampler=_ShareSampler(self),
                num_workers=num_workers,
                pin_memory=pin_memory,
                generator=self.generator,
                worker_init_fn=seed_worker if num_workers else None,
            )
        elif self.dataset is not None:
            self.loader = DataLoader(
                self.dataset,
                batch_size=batch_size,
                sampler=self.sampler,
                num_workers=num_workers,
                pin_memory=pin_memory,
                generator=self.generator,
                worker_init_fn=seed_worker if num_workers else None,
            )

    def __len__(self) -> int:
        """Samples in one epoch."""
        if self.tensors is not None:
            return len(self.tensors[0])
        source = self.dataset if self.dataset is not None else getattr(self.loader, "dataset", None)
        if isinstance(source, Sized):
            return len(source)
        raise TypeError("the data set has no len(); fit needs to know the size of an epoch")

    def num_batches(self) -> int:
        """Batches in one full epoch (of this process, which runs a share of each global batch)."""
        if self.loader is not None and self.dataset is None:
            return len(self.loader)
        total = len(self)
        if self.world_size > 1 and not self.fill and 0 < total % self.batch_size < self.world_size:
            return total // self.batch_size  # a last batch too small to share is left out
        return -(-total // self.batch_size)

    def global_size(self, index: int) -> int:
        """Samples in batch ``index`` over all the processes (``batch_size``, or fewer in the last one)."""
        return min(self.batch_size, len(self) - index * self.batch_size)

    def shares(self, order: Tensor) -> Iterator[Tensor]:
        """This process's indices of each batch of ``order``: ``batch_size`` samples split over the processes.

        The batches are the ones that one process draws; the processes split
        each into contiguous parts whose sizes differ by at most one.
        """
        self.fillers.clear()
        for position, indices in enumerate(torch.split(order, self.batch_size)):
            if self.world_size == 1:
                yield indices
                continue
            if len(indices) < self.world_size and not self.fill:
                return  # training leaves out a last batch too small to give every process a sample
            share = torch.tensor_split(indices, self.world_size)[self.rank]
            if len(share):
                yield share
            elif self.fill:
                self.fillers.add(position)
                yield indices[:1]

    @property
    def replays(self) -> bool:
        """Whether skipping batches means drawing them again (a ``DataLoader``), rather than indexing past them."""
        return self.tensors is None

    def epoch(self, epoch: int, *, skip: int = 0) -> Iterator[Any]:
        """The batches of ``epoch``, without its first ``skip`` batches.

        Tensors are indexed past the skipped batches. A ``DataLoader`` cannot
        seek, so its first ``skip`` batches are drawn and dropped: with the
        RNG and generator states of the epoch's start put back first (``fit``
        does), they are the batches the interrupted run drew, and the workers
        get the same seeds and the same batches as before.
        """
        if self.tensors is not None and self.sampler is not None:
            # skipping every batch of an epoch whose last batch is short passes the end: stop there
            self.sampler.set_epoch(epoch, start=min(skip * self.batch_size, self.sampler.length))
            return self._tensor_batches(self.tensors, self.sampler.order())
        if self.loader is None:  # pragma: no cover - every source has tensors or a loader
            raise RuntimeError("Batches has neither tensors nor a loader")
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        else:
            set_epoch = getattr(getattr(self.loader, "sampler", None), "set_epoch", None)
            if callable(set_epoch):  # DistributedSampler and its kind
                set_epoch(epoch)
        batches = iter(self.loader)
        for _ in range(skip):
            next(batches, None)
        return batches

    def _tensor_batches(self, tensors: tuple[Tensor, ...], order: Tensor) -> Iterator[tuple[Tensor, ...]]:
        if not len(order):  # torch.split of nothing gives one empty piece, not none
            return
        for index in self.shares(order):
            yield tuple(t[index] for t in tensors)

    def generators(self) -> list[torch.Generator]:
        """Every generator the batches draw from: ours (worker seeds), and a user loader's and its sampler's."""
        found: dict[int, torch.Generator] = {id(self.generator): self.generator}
        if self.sampler is None and self.loader is not None:
            for owner in (self.loader, self.loader.sampler, getattr(self.loader, "batch_sampler", None)):
                candidate = getattr(owner, "generator", None)
                if isinstance(candidate, torch.Generator):
                    found.setdefault(id(candidate), candidate)
                inner = getattr(getattr(owner, "sampler", None), "generator", None)
                if isinstance(inner, torch.Generator):
                    found.setdefault(id(inner), inner)
        return list(found.values())

    def state_dict(self) -> dict[str, Any]:
        """The shuffle's seed and every generator's state."""
        seed = self.sampler.seed if self.sampler is not None else None
        return {"seed": seed, "generators": [g.get_state() for g in self.generators()]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (of the same data source)."""
        generators = self.generators()
        if len(generators) != len(state["generators"]):
            raise ValueError(
                "the data's loader has other random generators than the run's that is resumed; "
                f"pass the same data. Received: {len(generators)} generators, "
                f"the run had {len(state['generators'])}"
            )
        if self.sampler is not None and state["seed"] is not None:
            self.sampler.seed = int(state["seed"])
        for generator, saved in zip(generators, state["generators"], strict=True):
            generator.set_state(saved)


class _ShareSampler(Sampler[list[int]]):
    """The batches of a ``Dataset`` for this process: its share of each batch of the epoch's order."""

    def __init__(self, batches: Batches) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        sampler = self.batches.sampler
        if sampler is None:  # pragma: no cover - a Dataset always has one
            return
        yield from (share.tolist() for share in self.batches.shares(sampler.order()))

    def __len__(self) -> int:
        return self.batches.num_batches()


def _seed_python_and_numpy(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional for torch
        return
    np.random.seed(seed % 2**32)


def seed_everything(seed: int) -> None:
    """Seed torch (every device), Python's ``random`` and numpy's global RNG."""
    torch.manual_seed(seed)
    _seed_python_and_numpy(seed)


def seed_worker(worker_id: int) -> None:
    """Seed Python's and numpy's RNGs in a DataLoader worker from the seed torch gave it; leave Ctrl-C to the main process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the run; a worker just ends with it
    _seed_python_and_numpy(torch.initial_seed())


def split_parts(train_data: Any, val_data: Any) -> tuple[Any, Any]:
    """``(train, val)`` data: a :class:`~blockzoo.data.Split` gives its train part, and its validation part when ``val_data`` is None."""
    if isinstance(val_data, Split):
        val_data = (val_data.x_val, val_data.y_val)
    if isinstance(train_data, Split):
        if val_data is None:
            val_data = (train_data.x_val, train_data.y_val)
        train_data = (train_data.x_train, train_data.y_train)
    return train_data, val_data


def check_data(data: Any, name: str) -> Any:
    """``data`` if ``fit`` can read it, else a TypeError that names ``name`` and says what it takes."""
    if isinstance(data, Split):
        return data
    if isinstance(data, (DataLoader, Dataset)):
        return data
    if isinstance(data, (tuple, list)) and len(data) >= 1 and all(isinstance(t, Tensor) for t in data):
        if any(t.ndim == 0 for t in data):
            raise ValueError(
                f"{name}: every tensor needs a first dimension of samples. "
                f"Received: {name} with shapes {[tuple(t.shape) for t in data]}"
            )
        lengths = {len(t) for t in data}
        if len(lengths) != 1:
            raise ValueError(
                f"{name}: the tensors must have one length (samples first). "
                f"Received: {name} with lengths {[len(t) for t in data]}"
            )
        if not lengths.pop():
            raise ValueError(f"{name}: the data set is empty. Received: {name} with 0 samples")
        return tuple(data)
    raise TypeError(
        f"{name} must be an (inputs, targets) pair of tensors, a Dataset, a DataLoader or a digits() Split. "
        f"Received: {name}={type(data).__name__}"
    )


def to_device(
    batch: Any, device: torch.device, *, non_blocking: bool = False, memory_format: torch.memory_format | None = None
) -> Any:
    """``batch`` with every tensor in it (in tuples, named tuples, lists and dicts) on ``device``; 4-D ones in ``memory_format`` when given."""
    if isinstance(batch, Tensor):
        batch = batch.to(device, non_blocking=non_blocking)
        return batch.contiguous(memory_format=memory_format) if memory_format is not None and batch.ndim == 4 else batch
    if isinstance(batch, dict):
        return {
            k: to_device(v, device, non_blocking=non_blocking, memory_format=memory_format) for k, v in batch.items()
        }
    if isinstance(batch, (tuple, list)):
        moved = [to_device(v, device, non_blocking=non_blocking, memory_format=memory_format) for v in batch]
        if isinstance(batch, tuple) and type(batch) is not tuple:  # a named tuple takes its fields one by one
            return type(batch)(*moved)
        return type(batch)(moved)
    return batch


def call_model(model: Callable[..., Any], inputs: Any) -> Any:
    """``model`` on a batch's inputs: a tensor, a tuple or list of positional inputs, or a dict of keyword inputs."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)
