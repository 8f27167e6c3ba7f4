"""``init_weights`` on resnet50 against torchvision's own init loop for the same model.

torchvision's ResNet constructor re-initialises its modules in a loop
(``kaiming_normal_`` with ``fan_out`` on every conv, ones and zeros on every
norm); that loop, on torchvision's resnet50, is the baseline. blockzoo's
``init_weights`` runs on the same torchvision model and on blockzoo's resnet50,
with and without path-keyed seeding. Target: within 1.5x.
Run alone: ``python -m benchmarks.bench_init``.
"""

from __future__ import annotations

import argparse

import torchvision
from torch import nn

import blockzoo
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings
from benchmarks._timing import alternate


def torchvision_loop(model: nn.Module) -> None:
    """The init loop of torchvision.models.resnet.ResNet.__init__, as torchvision runs it."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def measure(*, rounds: int, min_run_time: float, model: str = "resnet50", warmup: int = 3) -> list[Record | Skip]:
    """``init_weights`` in each form against torchvision's init loop on resnet50 (or another resnet)."""
    theirs = getattr(torchvision.models, model)()
    ours = blockzoo.create_model(model)
    fns = {
        "torchvision loop": lambda: torchvision_loop(theirs),
        "torchvision model": lambda: blockzoo.init_weights(theirs),
        "blockzoo model": lambda: blockzoo.init_weights(ours),
        "seed=0": lambda: blockzoo.init_weights(ours, seed=0),
        "kaiming fan_out": lambda: blockzoo.init_weights(
            ours, blockzoo.init.initializer("kaiming_normal", mode="fan_out", nonlinearity="relu")
        ),
    }
    times = alternate(fns, rounds=rounds, min_run_time=min_run_time, warmup=warmup)
    base = times.pop("torchvision loop")
    return [
        Record.from_samples(f"init/init_weights ({name})/vs torchvision loop", samples, base, target="<= 1.5")
        for name, samples in times.items()
    ]


def cases(settings: Settings) -> list[Case]:
    if settings.quick:
        return [Case("init", lambda: measure(rounds=1, min_run_time=0.01, model="resnet18", warmup=0))]
    return [Case("init", lambda: measure(rounds=5, min_run_time=0.5))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    args = parser.parse_args()
    print_rows(measure(rounds=args.rounds, min_run_time=args.min_run_time))
