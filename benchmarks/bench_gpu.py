"""GPU: resnet50 training images per second, blockzoo against torchvision, and the achieved TFLOP/s.

Both models train on synthetic data (batch 256 at 224x224, 1000 classes)
with bf16 autocast, channels_last memory and ``torch.compile``; SGD with
momentum, fused. The two take turns step by step after the compile; the
figure is images per second of the fastest steps. The FLOPs of one train
step (forward and backward) come from ``torch.utils.flop_counter.FlopCounterMode``
on the eager model; divided by the step time they give the achieved TFLOP/s,
reported with the model FLOP utilisation against the device's dense bf16 peak
where it is known. Without CUDA the case is skipped.
Run alone: ``python -m benchmarks.bench_gpu``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import blockzoo
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings, Skipped
from benchmarks._timing import take_turns

#: dense bf16 peak TFLOP/s by device name fragment (the vendors' data sheets, SXM parts)
PEAK_BF16 = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, fused=True)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _timed(step: Callable[[], None], steps: int) -> Callable[[], float]:
    def run() -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    return run


def train_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one forward and backward, counted by torch."""
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast("cuda", dtype=torch.bfloat16):
        nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(*, batch: int, rounds: int, steps: int, compile: bool) -> list[Record | Skip]:
    """The images per second of each model, and blockzoo's TFLOP/s."""
    if not torch.cuda.is_available():
        raise Skipped("no CUDA device")
    import torchvision

    torch.manual_seed(0)
    theirs = torchvision.models.resnet50()
    ours = blockzoo.models.load_torchvision_weights(blockzoo.create_model("resnet50"), theirs.state_dict())
    models = {
        k: m.cuda().to(memory_format=torch.channels_last).train() for k, m in (("ours", ours), ("theirs", theirs))
    }
    x = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    flops = train_flops(models["ours"], x, y)
    nets = {k: torch.compile(m) if compile else m for k, m in models.items()}
    fns = {k: _timed(_train_step(net, x, y), steps) for k, net in nets.items()}
    times = take_turns(fns, rounds=rounds, warmup=2)  # the warm-up compiles
    rate = {k: batch / min(v) for k, v in times.items()}
    tflops = flops / min(times["ours"]) / 1e12
    name = torch.cuda.get_device_name()
    peak = next((p for key, p in PEAK_BF16.items() if key in name), None)
    mfu = f", {100 * tflops / peak:.0f}% of the {peak:.0f} TFLOP/s bf16 peak" if peak else ""
    note = (
        f"{name}, batch {batch}, bf16 autocast, channels_last{', compiled' if compile else ''}; "
        f"{flops / batch / 1e9:.1f} GFLOP per image per step: {tflops:.0f} TFLOP/s achieved{mfu}"
    )
    return [
        Record(
            "gpu/resnet50/train images per second/vs torchvision",
            rate["ours"],
            rate["theirs"],
            "img/s",
            rate["ours"] / rate["theirs"],
            (
                min(t / o for o, t in zip(times["ours"], times["theirs"], strict=True)),
                max(t / o for o, t in zip(times["ours"], times["theirs"], strict=True)),
            ),
            target=">= 1.0",
            note=note,
        ).explain()
    ]


def cases(settings: Settings) -> list[Case]:
    batch, rounds, steps, compile = (32, 1, 2, False) if settings.quick else (256, 5, 20, True)
    return [Case("gpu/resnet50", lambda: measure(batch=batch, rounds=rounds, steps=steps, compile=compile))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    print_rows(measure(batch=args.batch, rounds=args.rounds, steps=args.steps, compile=not args.no_compile))
