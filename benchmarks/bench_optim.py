"""``optimizer.step()`` over resnet50's parameters: the factory against torch's default construction and timm.

Ratios are the factory's fastest round over the reference's, from alternating
rounds in one run. ``torch default`` is ``torch.optim.AdamW(params, lr)`` (or
``SGD(params, lr, momentum=0.9)``), which runs the for-loop implementation on
a CPU; the factory picks the fused one.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable

import torch
from _timing import alternate, best_ratio
from torch import nn

import blockzoo


def _model() -> nn.Module:
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50()
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def _builders(name: str) -> dict[str, Callable[[nn.Module], torch.optim.Optimizer]]:
    extra = {"momentum": 0.9} if name == "sgd" else {}
    cls = torch.optim.SGD if name == "sgd" else torch.optim.AdamW
    builders: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
        "blockzoo": lambda m: blockzoo.create_optimizer(m, name, lr=1e-3, weight_decay=0.05, **extra),
        "torch default": lambda m: cls(m.parameters(), lr=1e-3, **extra),
    }
    if importlib.util.find_spec("timm"):
        from timm.optim import create_optimizer_v2

        builders["timm"] = lambda m: create_optimizer_v2(m, name, lr=1e-3, weight_decay=0.05, **extra)
    return builders


def run(*, rounds: int, min_run_time: float) -> None:
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; resnet50, {sum(p.numel() for p in _model().parameters()):,} parameters"
    )
    print(f"{'optimizer':<10}{'reference':<15}{'ratio':>7}   target   implementation")
    for name, target in (("adamw", 0.30), ("sgd", 0.40)):
        builders = _builders(name)
        models = {label: _model() for label in builders}
        optimizers = {label: build(models[label]) for label, build in builders.items()}
        times = alternate(
            {label: opt.step for label, opt in optimizers.items()}, rounds=rounds, min_run_time=min_run_time
        )
        how = blockzoo.explain_param_groups(optimizers["blockzoo"]).implementation.split(" (")[0]
        for label in builders:
            if label == "blockzoo":
                continue
            ratio = best_ratio(times["blockzoo"], times[label])
            goal = f"<= {target}" if label == "torch default" else "<= 1.0"
            print(f"{name:<10}{label:<15}{ratio:>6.3f}x   {goal:<8} {how}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    args = parser.parse_args()
    run(rounds=args.rounds, min_run_time=args.min_run_time)
