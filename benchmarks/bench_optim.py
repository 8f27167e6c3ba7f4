"""``optimizer.step()`` over resnet50's parameters: blockzoo's factory against every torch implementation and the bound.

These steps are memory-bound: each parameter's update reads and writes a
fixed number of float32 tensors (AdamW: 7 x 4 bytes per parameter, SGD with
momentum: 5 x 4), so no implementation can beat those bytes divided by the
machine's memory bandwidth (measured by ``benchmarks/_bandwidth.py`` in the
same run). The rows: the factory's automatic choice against torch's
``fused=True``, ``foreach=True`` and its default construction (the for-loop
on a CPU) built on the same parameter groups, against timm's factory where
installed, and against the bandwidth bound. Figures are the fastest of
alternating rounds; the A/A column is a second factory optimizer on a second
copy of the model.
Run alone: ``python -m benchmarks.bench_optim``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import blockzoo
from benchmarks._bandwidth import ADAMW_BYTES_PER_PARAM, SGD_MOMENTUM_BYTES_PER_PARAM, bound_seconds, measure_bandwidth
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings
from benchmarks._timing import alternate

#: float32 tensors each step reads or writes per parameter (AdamW: param, grad, exp_avg, exp_avg_sq read;
#: param, exp_avg, exp_avg_sq written; SGD with momentum: param, grad, buffer read; param, buffer written).
BYTES_PER_PARAM = {"adamw": ADAMW_BYTES_PER_PARAM, "sgd": SGD_MOMENTUM_BYTES_PER_PARAM}
LR, WEIGHT_DECAY = 1e-3, 0.05


def _model(name: str) -> nn.Module:
    from torchvision import models

    torch.manual_seed(0)
    model = getattr(models, name)()
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def _builders(name: str) -> dict[str, Callable[[nn.Module], torch.optim.Optimizer]]:
    extra: dict[str, Any] = {"momentum": 0.9} if name == "sgd" else {}
    cls: Any = torch.optim.SGD if name == "sgd" else torch.optim.AdamW

    def groups(m: nn.Module) -> list[dict[str, Any]]:  # the factory's groups: the same work for every row
        return blockzoo.optim.param_groups(m, lr=LR, weight_decay=WEIGHT_DECAY)[0]

    def factory(m: nn.Module) -> torch.optim.Optimizer:
        return blockzoo.create_optimizer(m, name, lr=LR, weight_decay=WEIGHT_DECAY, **extra)

    builders: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
        "blockzoo": factory,
        "twin": factory,
        "torch fused": lambda m: cls(groups(m), lr=LR, fused=True, **extra),
        "torch foreach": lambda m: cls(groups(m), lr=LR, foreach=True, **extra),
        "torch default": lambda m: cls(groups(m), lr=LR, **extra),
    }
    if importlib.util.find_spec("timm"):
        from timm.optim import create_optimizer_v2

        builders["timm"] = lambda m: create_optimizer_v2(m, name, lr=LR, weight_decay=WEIGHT_DECAY, **extra)
    return builders


def bandwidth_bound(name: str, n_params: int) -> tuple[float, str]:
    """Seconds the step must take at the machine's read-read-write bandwidth, and how that was measured."""
    bw = measure_bandwidth()
    nbytes = BYTES_PER_PARAM[name] * n_params
    seconds = bound_seconds(n_params, BYTES_PER_PARAM[name], bw.read_read_write)
    return seconds, f"{nbytes / 1e6:.0f} MB at {bw.read_read_write / 1e9:.1f} GB/s (read-read-write)"


def measure(name: str, *, model: str, rounds: int, min_run_time: float, warmup: int = 3) -> list[Record | Skip]:
    """The rows of one optimizer."""
    builders = _builders(name)
    optimizers = {label: build(_model(model)) for label, build in builders.items()}
    n_params = sum(p.numel() for g in optimizers["blockzoo"].param_groups for p in g["params"])
    steps = {k: opt.step for k, opt in optimizers.items()}
    times = alternate(steps, rounds=rounds, min_run_time=min_run_time, warmup=warmup)
    how = blockzoo.explain_param_groups(optimizers["blockzoo"]).implementation.split(" (")[0]
    note = f"{model}, {n_params:,} parameters; blockzoo chose {how}"
    targets = {"torch fused": "<= 1.0", "torch foreach": "<= 1.0", "torch default": None, "timm": "<= 1.0"}
    rows: list[Record | Skip] = [
        Record.from_samples(
            f"optim/{name}/vs {label}",
            times["blockzoo"],
            times[label],
            twin=times["twin"],
            target=target,
            note=note if label == "torch fused" else "",
        )
        for label, target in targets.items()
        if label in times
    ]
    if "timm" not in times:
        rows.append(Skip(f"optim/{name}/vs timm", "timm is not installed"))
    rows.append(
        Skip(
            f"optim/{name}/vs torch compiled",
            "not measured on CPU: compiling the step takes about 36 s per optimizer here, and the compiled "
            "step measured slower than the fused one (AdamW 23.3 ms against 16.6 ms)",
        )
    )
    bound, how_bound = bandwidth_bound(name, n_params)
    fastest = min(times["blockzoo"])
    rows.append(
        Record(
            f"optim/{name}/vs bandwidth bound",
            fastest,
            bound,
            "s",
            fastest / bound,
            (fastest / bound,) * 2,
            target="<= 1.1",
            note=how_bound,
        ).explain()
    )
    return rows


def cases(settings: Settings) -> list[Case]:
    model, rounds, min_run_time, warmup = ("resnet18", 1, 0.01, 1) if settings.quick else ("resnet50", 5, 0.5, 3)
    return [
        Case(
            f"optim/{name}",
            lambda n=name: measure(n, model=model, rounds=rounds, min_run_time=min_run_time, warmup=warmup),
        )
        for name in ("adamw", "sgd")
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    args = parser.parse_args()
    for optimizer_name in ("adamw", "sgd"):
        print_rows(measure(optimizer_name, model="resnet50", rounds=args.rounds, min_run_time=args.min_run_time))
