"""Models against torchvision's same architecture, with the same weights: forward, train step, peak memory.

Ratios are blockzoo's fastest round over torchvision's, from alternating
rounds in one run; peak memory is the growth of the resident set during one
resnet50 forward, each in a fresh process (median of several).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Callable

import torch
import torchvision
from _timing import alternate, best_ratio
from torch import nn

import blockzoo

NAMES = ("resnet18", "resnet50", "mobilenet_v2")

_PEAK = """
import resource, sys, torch, torchvision, blockzoo
torch.manual_seed(0)
name, side = sys.argv[1], int(sys.argv[2])
model = (blockzoo.create_model("resnet50") if name == "blockzoo" else torchvision.models.resnet50()).eval()
x = torch.randn(8, 3, side, side)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    model(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _pair(name: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)()
    ours = blockzoo.models.load_torchvision_weights(blockzoo.create_model(name), theirs.state_dict())
    return ours, theirs


def _forward(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    model.eval()

    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def _train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    y = torch.randint(0, 1000, (x.shape[0],))

    def run() -> object:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return None

    return run


def peak_memory(side: int, runs: int) -> float:
    growth: dict[str, list[int]] = {"blockzoo": [], "torchvision": []}
    for _ in range(runs):
        for label in growth:
            out = subprocess.run(
                [sys.executable, "-c", _PEAK, label, str(side)], capture_output=True, text=True, check=True
            )
            growth[label].append(int(out.stdout.split()[-1]))
    return statistics.median(growth["blockzoo"]) / statistics.median(growth["torchvision"])


def run(*, batch: int, side: int, rounds: int, min_run_time: float) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {batch}, {side}x{side}")
    print(f"{'model':<14}{'pass':<12}{'ratio':>7}   target")
    for name in NAMES:
        ours, theirs = _pair(name)
        x = torch.randn(batch, 3, side, side)
        for label, make in (("forward", _forward), ("train step", _train_step)):
            times = alternate(
                {"ours": make(ours, x), "theirs": make(theirs, x)}, rounds=rounds, min_run_time=min_run_time
            )
            print(f"{name:<14}{label:<12}{best_ratio(times['ours'], times['theirs']):>6.3f}x   <= 1.02")
    print(f"{'resnet50':<14}{'peak memory':<12}{peak_memory(side, 3):>6.3f}x   within 2%")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    run(batch=args.batch, side=args.side, rounds=args.rounds, min_run_time=args.min_run_time)
