"""Eval forward of each deployment step against the unfused eager model, on CPU.

For resnet18 (torchvision's architecture, batch 8 at 224x224 by default),
resnet56 and simple_cnn (batch 8 at 32x32): ``fuse_conv_bn``;
``to_channels_last``; both; and ``optimize_for_inference`` (both, then
``torch.compile`` with inductor's freezing). The steps and the eager model
(plus a second eager copy: the A/A column, the noise floor) take turns
within each round; each number is a speedup, eager time over step time,
from the fastest round and the median round. The channels_last steps get
their input in channels_last memory, as a data pipeline would hand it over.

Targets (issue 14): fold >= 1.08x, fold + channels_last >= 1.35x,
optimize_for_inference >= 1.6x. Folding cannot beat torch's own fold
(``fuse_conv_bn_eval``), which blockzoo calls.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _timing import alternate, best_ratio, median_ratio
from torch import nn

import blockzoo

#: model -> input side (resnet18's is the --side option)
MODELS = {"resnet18": None, "resnet56": 32, "simple_cnn": 32}
TARGETS = {"fuse_conv_bn": ">= 1.08", "fuse + channels_last": ">= 1.35", "optimize_for_inference": ">= 1.6"}


def _eager(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def steps(name: str, x: torch.Tensor, *, compile: bool) -> tuple[dict[str, Callable[[], object]], str]:
    """The callables to time for one model, and a note on the compile."""
    torch.manual_seed(0)
    model = blockzoo.create_model(name).eval()
    twin = blockzoo.create_model(name).eval()
    twin.load_state_dict(model.state_dict())
    x_cl = x.contiguous(memory_format=torch.channels_last)
    fused = blockzoo.fuse_conv_bn(model)
    fns = {
        "eager": _eager(model, x),
        "A/A (eager copy)": _eager(twin, x),
        "fuse_conv_bn": _eager(fused, x),
        "to_channels_last": _eager(blockzoo.to_channels_last(model), x_cl),
        "fuse + channels_last": _eager(blockzoo.to_channels_last(fused), x_cl),
    }
    note = "optimize_for_inference skipped (--no-compile)"
    if compile:
        fast = blockzoo.optimize_for_inference(model, x_cl)
        report = fast.report
        note = (
            f"optimize_for_inference compiled in {report.compile_seconds:.1f} s (first call)"
            if report.compiled
            else f"optimize_for_inference did not compile ({report.compile_error}): eager"
        )
        fns["optimize_for_inference"] = lambda: fast(x_cl)
    return fns, note


def run(*, batch: int, side: int, rounds: int, min_run_time: float, compile: bool = True) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {rounds} alternating rounds")
    print(f"{'model':<12}{'input':<16}{'step':<24}{'fastest':>8} {'median':>7}   target")
    for name, model_side in MODELS.items():
        s = side if model_side is None else model_side
        x = torch.randn(batch, 3, s, s)
        fns, note = steps(name, x, compile=compile)
        times = alternate(fns, rounds=rounds, min_run_time=min_run_time)
        base = times.pop("eager")
        shape = "x".join(map(str, x.shape))
        for step, samples in times.items():
            fastest, median = best_ratio(base, samples), median_ratio(base, samples)
            target = TARGETS.get(step, "~1.00" if step.startswith("A/A") else "")
            print(f"{name:<12}{shape:<16}{step:<24}{fastest:>7.3f}x {median:>6.3f}x   {target}")
        print(f"{'':<12}{note}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=224, help="resnet18's input side")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    parser.add_argument("--no-compile", action="store_true", help="skip optimize_for_inference")
    args = parser.parse_args()
    run(
        batch=args.batch,
        side=args.side,
        rounds=args.rounds,
        min_run_time=args.min_run_time,
        compile=not args.no_compile,
    )
