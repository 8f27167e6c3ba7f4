"""Regularization overhead on a resnet18 train step: L2 in gradient mode and in loss mode, and activity penalties.

Each variant is a separate copy of the same model with the same weights; the
variants take turns step by step, and the ratios are the fastest step and the
median step of each over the plain train step's, with an A/A row (a second
plain copy: the noise floor).
Targets: gradient-mode L2 within 5% of no penalty, and cheaper than loss mode;
the activity-penalty overhead (an L1 penalty on the output of every residual
block) is reported.
Run alone: ``python -m benchmarks.bench_regularization``.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import torch
from torch import nn

import blockzoo
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings
from benchmarks._timing import interleave
from blockzoo.regularization import L1, L2, attach_activity_penalty, attach_penalty, regularization_loss


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def run() -> None:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y) + regularization_loss(model)
        loss.backward()
        opt.step()

    return run


def measure(*, batch: int, side: int, steps: int, warmup: int = 2) -> list[Record | Skip]:
    """The overhead of each penalty on a resnet18 train step, and gradient mode against loss mode."""
    base = blockzoo.create_model("resnet18")
    x = torch.randn(batch, 3, side, side)
    y = torch.randint(0, 1000, (batch,))
    variants = {name: copy.deepcopy(base) for name in ("none", "twin", "L2 grad", "L2 loss", "activity L1")}
    attach_penalty(variants["L2 grad"], L2(1e-4), mode="grad")
    attach_penalty(variants["L2 loss"], L2(1e-4), mode="loss")
    attach_activity_penalty(variants["activity L1"], L1(1e-6), include="features.stage?.?")
    times = interleave({name: _step(model, x, y) for name, model in variants.items()}, calls=steps, warmup=warmup)
    note = f"resnet18 train step, batch {batch}, {side}x{side}"
    return [
        Record.from_samples(
            "regularization/L2 grad/vs no penalty",
            times["L2 grad"],
            times["none"],
            noise=min(times["twin"]) / min(times["none"]),
            target="<= 1.05",
            note=note,
        ),
        Record.from_samples("regularization/L2 grad/vs L2 loss", times["L2 grad"], times["L2 loss"], target="<= 1.0"),
        Record.from_samples("regularization/L2 loss/vs no penalty", times["L2 loss"], times["none"]),
        Record.from_samples("regularization/activity L1/vs no penalty", times["activity L1"], times["none"]),
    ]


def cases(settings: Settings) -> list[Case]:
    batch, side, steps, warmup = (2, 32, 1, 0) if settings.quick else (8, 112, 20, 2)
    return [Case("regularization", lambda: measure(batch=batch, side=side, steps=steps, warmup=warmup))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=112)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print_rows(measure(batch=args.batch, side=args.side, steps=args.steps))
