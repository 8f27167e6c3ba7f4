"""Regularization overhead on a resnet18 train step: L2 in gradient mode and in loss mode, and activity penalties.

Each variant is a separate copy of the same model with the same weights; the
variants take turns step by step, and the ratios are the fastest step and the
median step of each over the plain train step's, with an A/A row (a second
plain copy: the noise floor).
Targets: gradient-mode L2 within 5% of no penalty, and cheaper than loss mode;
the activity-penalty overhead (an L1 penalty on the output of every residual
block) is reported.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import torch
from _timing import best_ratio, interleave, median_ratio
from torch import nn

import blockzoo
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


def run(*, batch: int, side: int, steps: int) -> None:
    base = blockzoo.create_model("resnet18")
    x = torch.randn(batch, 3, side, side)
    y = torch.randint(0, 1000, (batch,))
    variants = {name: copy.deepcopy(base) for name in ("none", "twin", "L2 grad", "L2 loss", "activity L1")}
    attach_penalty(variants["L2 grad"], L2(1e-4), mode="grad")
    attach_penalty(variants["L2 loss"], L2(1e-4), mode="loss")
    attach_activity_penalty(variants["activity L1"], L1(1e-6), include="features.stage?.?")
    fns = {name: _step(model, x, y) for name, model in variants.items()}
    times = interleave(fns, calls=steps)
    none = times["none"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; resnet18 train step, batch {batch}, "
        f"{side}x{side}, {steps} steps each ({min(none) * 1e3:.0f} ms fastest plain step)"
    )
    print(f"{'variant':<14}{'fastest':>8} {'median':>8}   target")
    targets = {"twin": "A/A (noise)", "L2 grad": "<= 1.05, < L2 loss", "L2 loss": "", "activity L1": "reported"}
    for name, target in targets.items():
        fastest, median = best_ratio(times[name], none), median_ratio(times[name], none)
        print(f"{name:<14}{fastest:>7.3f}x {median:>7.3f}x   {target}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=112)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    run(batch=args.batch, side=args.side, steps=args.steps)
