"""``fit``'s time per epoch against a hand-written loop doing the same work.

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

Cases: simple_cnn on the 8x8 digits, resnet20 on the digits resized to 32x32
with 3 channels. ``--device cuda`` adds resnet18 on the digits resized to
128x128, batch 256, with bf16 autocast, channels_last and ``torch.compile``
in both loops (the first epoch of each call compiles and is not timed), and
prints training images per second of epoch time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from _timing import best_ratio, median_ratio, take_turns
from torch import Tensor, nn

import blockzoo
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


def _data(case: Case, samples: int | None) -> Data:
    x_train, y_train, x_val, y_val = digits(**case.data_options)
    if samples is not None:
        x_train, y_train = x_train[:samples], y_train[:samples]
        x_val, y_val = x_val[: max(1, samples // 4)], y_val[: max(1, samples // 4)]
    return x_train, y_train, x_val, y_val


def same_work(init: nn.Module, data: Data, case: Case, device: torch.device) -> str:
    """An epoch of each loop (two when compiled) from the same weights: ``"identical"`` or the largest difference."""
    ours, theirs = copy.deepcopy(init), copy.deepcopy(init)
    epochs = 2 if case.compile else 1
    fit_loop(ours, data, case=case, epochs=epochs, device=device)
    hand_loop(theirs, data, case=case, epochs=epochs, device=device)
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


def run(
    *,
    rounds: int,
    epochs: int = 1,
    samples: int | None = None,
    cases: tuple[str, ...] = CPU_CASES,
    device: str = "cpu",
    threads: int | None = None,
) -> None:
    chosen = torch.device(device)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    if any(CASES[name].compile for name in cases):
        epochs = max(epochs, 2)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {chosen}; fit against a hand-written loop, "
        f"{rounds} rounds of {epochs} epoch(s) each, AdamW lr {LR}"
    )
    width = max(len(CASES[name].data_label) for name in cases) + 2
    print(f"{'model':<12}{'data':<{width}}{'hand epoch':>11}{'fastest':>9}{'median':>8}{'A/A':>8}{'call':>8}   target")
    notes = []
    try:
        for name in cases:
            case = CASES[name]
            data = _data(case, samples)
            torch.manual_seed(SEED)
            init = blockzoo.create_model(case.model, **case.model_options)
            same = same_work(init, data, case, chosen)
            notes.append(f"{name}: fit's weights against the hand loop's after the same epochs: {same}")
            fns = {
                "fit": _timed(fit_loop, init, data, case, epochs, chosen),
                "hand": _timed(hand_loop, init, data, case, epochs, chosen),
                "twin": _timed(hand_loop, init, data, case, epochs, chosen),
            }
            times = take_turns(fns, rounds=rounds, warmup=0)  # same_work ran both loops once
            epoch = {k: [t[0] for t in v] for k, v in times.items()}
            call = {k: [t[1] for t in v] for k, v in times.items()}
            fastest = best_ratio(epoch["fit"], epoch["hand"])
            median = median_ratio(epoch["fit"], epoch["hand"])
            noise = median_ratio(epoch["twin"], epoch["hand"])
            whole = median_ratio(call["fit"], call["hand"])
            flag = "" if median <= 1.05 else "  over"
            print(
                f"{case.model:<12}{case.data_label:<{width}}{min(epoch['hand']):>9.3f} s{fastest:>8.3f}x"
                f"{median:>7.3f}x{noise:>7.3f}x{whole:>7.3f}x   <= 1.05{flag}"
            )
            if chosen.type == "cuda":
                images = len(data[0])
                notes.append(
                    f"{name}: training images per second of epoch time: fit {images / min(epoch['fit']):,.0f}, "
                    f"hand loop {images / min(epoch['hand']):,.0f}"
                )
    finally:
        torch.set_num_threads(before)
    for note in notes:
        print(note)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per call (at least 2 with torch.compile)")
    parser.add_argument("--samples", type=int, default=None, help="train on the first N samples only (a quick look)")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda adds resnet18_fast)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the run")
    args = parser.parse_args()
    default = (*CPU_CASES, "resnet18_fast") if args.device.startswith("cuda") else CPU_CASES
    run(
        rounds=args.rounds,
        epochs=args.epochs,
        samples=args.samples,
        cases=tuple(args.cases or default),
        device=args.device,
        threads=args.threads,
    )
