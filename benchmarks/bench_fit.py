"""``fit``'s time per epoch against a hand-written loop and Lightning's ``Trainer.fit`` doing the same work.

The hand loop is what a careful user writes: a copy of the same initial
weights, the same batches in the same order (``fit(seed=s)`` shuffles epoch
``e`` with ``torch.randperm(n, generator=torch.Generator().manual_seed(s + e))``),
AdamW from ``blockzoo.create_optimizer`` (lr 3e-3), batch 64, cross-entropy,
the loss and accuracy summed on the device and read once per epoch, and a
validation pass after every epoch. Before timing, one epoch of each runs and
their weights are compared: equal weights show that both did the same work.

fit, the hand loop and a second hand loop (the A/A column: the noise floor)
take turns, one call each per round. Each call times its epochs from the
start of the epoch to the end of its validation (a callback marks them in
fit). ``fastest`` is fit's fastest epoch over the hand loop's, ``median`` the
median over rounds of the two ratios measured side by side; ``call`` compares
whole calls, set-up included (fit's option checks, its pre-flight check of the
model against the data and the optimizer it builds, against the loop's
optimizer construction).

Lightning (where installed, CPU cases): a ``LightningModule`` around a copy
of the same model, the same optimizer, and a data loader that hands over
the same batches (the same epoch orders, indexed as whole batches, as fit
and the hand loop do), validation after every epoch, no logger, checkpoint,
progress bar or summary; its epoch is timed from ``on_train_epoch_start`` to
``on_train_epoch_end``, which Lightning calls after the validation.

Cases: simple_cnn on the 8x8 digits, resnet20 on the digits resized to 32x32
with 3 channels. ``--device cuda`` adds resnet18 on the digits resized to
128x128, batch 256, with bf16 autocast, channels_last and ``torch.compile``
in both loops (the first epoch of each call compiles and is not timed), and
prints training images per second of epoch time.
Run alone: ``python -m benchmarks.bench_fit``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import blockzoo
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case as SuiteCase
from benchmarks._suite import Settings
from benchmarks._timing import take_turns
from blockzoo.data import digits
from blockzoo.train import Callback, fit

LR = 3e-3
SEED = 0
Data = tuple[Tensor, Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class Case:
    """One model on one form of the digits, and the loop options both loops use."""

    model: str
    model_options: dict[str, Any]
    data_options: dict[str, Any]
    data_label: str
    batch_size: int = 64
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False

    @property
    def fit_options(self) -> dict[str, Any]:
        """The same options for fit."""
        return {"amp": self.amp, "channels_last": self.channels_last, "compile": self.compile}


CASES = {
    "simple_cnn": Case("simple_cnn", {"in_channels": 1, "img_size": 8}, {"images": True}, "digits 8x8x1"),
    "resnet20": Case("resnet20", {}, {"image_size": 32, "channels": 3}, "digits 32x32x3"),
    "resnet18_fast": Case(
        "resnet18",
        {"num_classes": 10},
        {"image_size": 128, "channels": 3},
        "digits 128x128x3, bf16, channels_last, compile",
        batch_size=256,
        amp="bf16",
        channels_last=True,
        compile=True,
    ),
}
CPU_CASES = ("simple_cnn", "resnet20")


def _autocast(case: Case, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    if case.amp is None:
        return contextlib.nullcontext
    dtype = torch.bfloat16 if case.amp == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def _batches(x: Tensor, y: Tensor, order: Tensor, size: int) -> Iterator[tuple[Tensor, Tensor]]:
    for index in order.split(size):
        yield x[index], y[index]


def hand_loop(model: nn.Module, data: Data, *, case: Case, epochs: int, device: torch.device) -> list[float]:
    """Train as fit does, written out; returns the seconds of each epoch (training and validation)."""
    torch.manual_seed(SEED)
    x_train, y_train, x_val, y_val = data
    model.to(device)
    memory = torch.channels_last if case.channels_last else torch.contiguous_format
    if case.channels_last:
        model.to(memory_format=memory)
    optimizer = blockzoo.create_optimizer(model, "adamw", lr=LR, weight_decay=0.0)
    net = torch.compile(model) if case.compile else model
    autocast = _autocast(case, device)
    cuda = device.type == "cuda"

    def move(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = x.to(device, non_blocking=cuda)
        return x.contiguous(memory_format=memory) if x.ndim == 4 else x, y.to(device, non_blocking=cuda)

    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        net.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(SEED + epoch))
        for x, y in _batches(x_train, y_train, order, case.batch_size):
            x, y = move(x, y)
            with autocast():
                out = net(x)
                loss = F.cross_entropy(out, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach().float() * len(y)
            correct += (out.detach().argmax(dim=1) == y).sum()
        net.eval()
        val_loss = torch.zeros((), device=device)
        val_correct = torch.zeros((), device=device)
        with torch.no_grad():
            for x, y in _batches(x_val, y_val, torch.arange(len(x_val)), case.batch_size):
                x, y = move(x, y)
                with autocast():
                    out = net(x)
                    loss = F.cross_entropy(out, y)
                val_loss += loss.float() * len(y)
                val_correct += (out.argmax(dim=1) == y).sum()
        torch.stack([loss_sum, correct, val_loss, val_correct]).tolist()  # the epoch's figures, read once
        seconds.append(time.perf_counter() - start)
    return seconds


class _EpochClock(Callback):
    """The seconds of each epoch of fit, from its start to the end of its validation."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.start = 0.0

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer: Any, epoch: int, logs: Any) -> None:
        self.seconds.append(time.perf_counter() - self.start)


def fit_loop(model: nn.Module, data: Data, *, case: Case, epochs: int, device: torch.device) -> list[float]:
    """``fit`` with the same options; returns the seconds of each epoch."""
    clock = _EpochClock()
    x_train, y_train, x_val, y_val = data
    fit(
        model,
        (x_train, y_train),
        val_data=(x_val, y_val),
        epochs=epochs,
        batch_size=case.batch_size,
        lr=LR,
        device=device,
        callbacks=[clock],
        progress=False,
        seed=SEED,
        **case.fit_options,
    )
    return clock.seconds


class _EpochOrder(torch.utils.data.Sampler[Tensor]):
    """The batches of fit's epoch order as index tensors; Lightning calls ``set_epoch`` before each epoch."""

    def __init__(self, n: int, size: int, *, shuffle: bool) -> None:
        self.n, self.size, self.shuffle, self.epoch = n, size, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Tensor]:
        order = (
            torch.randperm(self.n, generator=torch.Generator().manual_seed(SEED + self.epoch))
            if self.shuffle
            else torch.arange(self.n)
        )
        return iter(order.split(self.size))

    def __len__(self) -> int:
        return -(-self.n // self.size)


class _Batches(torch.utils.data.Dataset[tuple[Tensor, Tensor]]):
    """Tensors indexed a whole batch at a time, as fit and the hand loop index them."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __getitem__(self, index: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return self.x[index], self.y[index]

    def __len__(self) -> int:
        return len(self.x)


def lightning_loop(model: nn.Module, data: Data, *, case: Case, epochs: int, device: torch.device) -> list[float]:
    """Lightning's ``Trainer.fit`` doing the same work; returns the seconds of each epoch (training and validation)."""
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net
            self.sums = torch.zeros(4)

        def on_train_epoch_start(self) -> None:
            self.sums = torch.zeros(4, device=self.device)

        def training_step(self, batch: tuple[Tensor, Tensor], index: int) -> Tensor:
            x, y = batch
            out = self.net(x)
            loss = F.cross_entropy(out, y)
            self.sums[0] += loss.detach().float() * len(y)
            self.sums[1] += (out.detach().argmax(dim=1) == y).sum()
            return loss

        def validation_step(self, batch: tuple[Tensor, Tensor], index: int) -> None:
            x, y = batch
            out = self.net(x)
            self.sums[2] += F.cross_entropy(out, y).float() * len(y)
            self.sums[3] += (out.argmax(dim=1) == y).sum()

        def on_train_epoch_end(self) -> None:
            self.sums.tolist()  # the epoch's figures, read once

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return blockzoo.create_optimizer(self.net, "adamw", lr=LR, weight_decay=0.0)

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.start = 0.0

        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    torch.manual_seed(SEED)
    x_train, y_train, x_val, y_val = data

    def loader(x: Tensor, y: Tensor, shuffle: bool) -> torch.utils.data.DataLoader[Any]:
        sampler = _EpochOrder(len(x), case.batch_size, shuffle=shuffle)
        return torch.utils.data.DataLoader(_Batches(x, y), batch_size=None, sampler=sampler)

    clock = Clock()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and logging, not about the work
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            use_distributed_sampler=False,
            default_root_dir=root,
            callbacks=[clock],
        )
        trainer.fit(Module(model), loader(x_train, y_train, True), loader(x_val, y_val, False))
    return clock.seconds


def _data(case: Case, samples: int | None) -> Data:
    x_train, y_train, x_val, y_val = digits(**case.data_options)
    if samples is not None:
        x_train, y_train = x_train[:samples], y_train[:samples]
        x_val, y_val = x_val[: max(1, samples // 4)], y_val[: max(1, samples // 4)]
    return x_train, y_train, x_val, y_val


def same_work(
    init: nn.Module, data: Data, case: Case, device: torch.device, other: Callable[..., list[float]] = hand_loop
) -> str:
    """An epoch of fit and of ``other`` (two when compiled) from the same weights: ``"identical"`` or the largest difference."""
    ours, theirs = copy.deepcopy(init), copy.deepcopy(init)
    epochs = 2 if case.compile else 1
    fit_loop(ours, data, case=case, epochs=epochs, device=device)
    other(theirs, data, case=case, epochs=epochs, device=device)
    a, b = ours.state_dict(), theirs.state_dict()
    diffs = [(a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point()]
    return "identical" if all(torch.equal(a[k], b[k]) for k in a) else f"max |diff| {max(diffs):.1e}"


def _timed(
    loop: Callable[..., list[float]], init: nn.Module, data: Data, case: Case, epochs: int, device: torch.device
) -> Callable[[], tuple[float, float]]:
    skip = 1 if case.compile else 0  # a compiling first epoch measures the compiler

    def run() -> tuple[float, float]:
        model = copy.deepcopy(init)
        start = time.perf_counter()
        seconds = loop(model, data, case=case, epochs=epochs, device=device)
        call = time.perf_counter() - start
        return statistics.mean(seconds[skip:]), call

    return run


def measure(
    name: str, *, rounds: int, epochs: int = 1, samples: int | None = None, device: str = "cpu"
) -> list[Record | Skip]:
    """fit against the hand loop (and Lightning, on the CPU cases) for one case."""
    case = CASES[name]
    chosen = torch.device(device)
    if case.compile:
        epochs = max(epochs, 2)
    data = _data(case, samples)
    torch.manual_seed(SEED)
    init = blockzoo.create_model(case.model, **case.model_options)
    notes = [f"{case.data_label}, {len(data[0])} samples, batch {case.batch_size}, {epochs} epoch(s) per call"]
    notes.append(f"weights after the same epochs, fit against the hand loop: {same_work(init, data, case, chosen)}")
    loops: dict[str, Callable[..., list[float]]] = {"fit": fit_loop, "hand": hand_loop, "twin": hand_loop}
    rows: list[Record | Skip] = []
    if case.compile:
        rows.append(Skip(f"fit/{name}/epoch/vs lightning", "not measured for compiled cases"))
    elif importlib.util.find_spec("lightning"):
        loops["lightning"] = lightning_loop
        notes.append(f"against Lightning: {same_work(init, data, case, chosen, lightning_loop)}")
    else:
        rows.append(Skip(f"fit/{name}/epoch/vs lightning", "lightning is not installed (pip install lightning)"))
    fns = {k: _timed(loop, init, data, case, epochs, chosen) for k, loop in loops.items()}
    times = take_turns(fns, rounds=rounds, warmup=0)  # same_work ran the loops once
    epoch = {k: [t[0] for t in v] for k, v in times.items()}
    call = {k: [t[1] for t in v] for k, v in times.items()}
    noise = min(epoch["twin"]) / min(epoch["hand"])
    rows.append(
        Record.from_samples(
            f"fit/{name}/epoch/vs hand loop",
            epoch["fit"],
            epoch["hand"],
            noise=noise,
            target="<= 1.05",
            note="; ".join(notes),
        )
    )
    rows.append(Record.from_samples(f"fit/{name}/call/vs hand loop", call["fit"], call["hand"]))
    if "lightning" in epoch:
        rows.append(
            Record.from_samples(
                f"fit/{name}/epoch/vs lightning", epoch["fit"], epoch["lightning"], noise=noise, target="<= 1.0"
            )
        )
    if chosen.type == "cuda":
        images = len(data[0])
        fit_rate, hand_rate = images / min(epoch["fit"]), images / min(epoch["hand"])
        rows.append(
            Record(
                f"fit/{name}/images per second/vs hand loop",
                fit_rate,
                hand_rate,
                "img/s",
                fit_rate / hand_rate,
                (fit_rate / hand_rate,) * 2,
                target=">= 0.95",
            ).explain()
        )
    return rows


def cases(settings: Settings) -> list[SuiteCase]:
    samples = 128 if settings.quick else None
    rounds = {"simple_cnn": 1 if settings.quick else 7, "resnet20": 1 if settings.quick else 3}
    out = [SuiteCase(f"fit/{name}", lambda n=name: measure(n, rounds=rounds[n], samples=samples)) for name in CPU_CASES]
    if torch.cuda.is_available():
        out.append(
            SuiteCase(
                "fit/resnet18_fast",
                lambda: measure("resnet18_fast", rounds=1 if settings.quick else 3, samples=samples, device="cuda"),
            )
        )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per call (at least 2 with torch.compile)")
    parser.add_argument("--samples", type=int, default=None, help="train on the first N samples only (a quick look)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda adds resnet18_fast)")
    args = parser.parse_args()
    default = (*CPU_CASES, "resnet18_fast") if args.device.startswith("cuda") else CPU_CASES
    for case_name in args.cases or default:
        print_rows(measure(case_name, rounds=args.rounds, epochs=args.epochs, samples=args.samples, device=args.device))
