"""``init_weights`` on resnet50 against torchvision's own init loop for the same model.

torchvision's ResNet constructor re-initialises its modules in a loop
(``kaiming_normal_`` with ``fan_out`` on every conv, ones and zeros on every
norm); that loop, on torchvision's resnet50, is the baseline. blockzoo's
``init_weights`` runs on the same torchvision model and on blockzoo's resnet50,
with and without path-keyed seeding. Target: within 1.5x.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from _timing import alternate, best_ratio
from torch import nn

import blockzoo


def torchvision_loop(model: nn.Module) -> None:
    """The init loop of torchvision.models.resnet.ResNet.__init__, as torchvision runs it."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def run(*, rounds: int, min_run_time: float) -> None:
    theirs = torchvision.models.resnet50()
    ours = blockzoo.create_model("resnet50")
    fns = {
        "torchvision loop": lambda: torchvision_loop(theirs),
        "init_weights (torchvision model)": lambda: blockzoo.init_weights(theirs),
        "init_weights (blockzoo model)": lambda: blockzoo.init_weights(ours),
        "init_weights(seed=0)": lambda: blockzoo.init_weights(ours, seed=0),
        "init_weights(kaiming fan_out)": lambda: blockzoo.init_weights(
            ours, blockzoo.init.initializer("kaiming_normal", mode="fan_out", nonlinearity="relu")
        ),
    }
    times = alternate(fns, rounds=rounds, min_run_time=min_run_time)
    base = times["torchvision loop"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; resnet50 ({min(base) * 1e3:.0f} ms baseline)")
    print(f"{'what':<36}{'ratio':>7}   target")
    for name, samples in times.items():
        if name != "torchvision loop":
            print(f"{name:<36}{best_ratio(samples, base):>6.3f}x   <= 1.5")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    run(rounds=args.rounds, min_run_time=args.min_run_time)
