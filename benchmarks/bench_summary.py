"""``summary`` and ``flops`` on resnet50 against what they cost at least: one forward, and torch's FLOP counter.

``summary(model, input_size)`` runs one forward (on the meta device or for
real) with hooks on every module, so its floor is one eager forward at the
same input; ``flops`` against a forward under
``torch.utils.flop_counter.FlopCounterMode``, which is what a user of plain
torch writes to count FLOPs. Both are reported (no target): they run once per
model, not per step.
Run alone: ``python -m benchmarks.bench_summary``.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

import blockzoo
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings
from benchmarks._timing import interleave


def measure(name: str, *, side: int, calls: int, warmup: int = 2) -> list[Record | Skip]:
    """The rows for one model at batch 2 (summary also runs a training-mode pass: batch norms need two samples)."""
    model = blockzoo.create_model(name).eval()
    size = (2, 3, side, side)
    x = torch.randn(size)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def counted() -> None:
        with torch.no_grad(), FlopCounterMode(display=False):
            model(x)

    fns = {
        "summary": lambda: blockzoo.summary(model, size),
        "flops": lambda: blockzoo.flops(model, size),
        "forward": forward,
        "FlopCounterMode": counted,
    }
    times = interleave(fns, calls=calls, warmup=warmup)
    note = f"{name}, {'x'.join(map(str, size))}"
    return [
        Record.from_samples(f"summary/{name}/summary/vs forward", times["summary"], times["forward"], note=note),
        Record.from_samples(f"summary/{name}/flops/vs FlopCounterMode", times["flops"], times["FlopCounterMode"]),
    ]


def cases(settings: Settings) -> list[Case]:
    name, side, calls, warmup = ("resnet18", 32, 1, 0) if settings.quick else ("resnet50", 224, 5, 2)
    return [Case("summary", lambda: measure(name, side=side, calls=calls, warmup=warmup))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    print_rows(measure(args.model, side=args.side, calls=args.calls))
