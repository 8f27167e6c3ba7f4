"""Eval forward of each deployment step against the unfused eager model, on CPU.

For blockzoo's resnet18 and torchvision's (batch 8 at 224x224 by default),
resnet56 and simple_cnn (batch 8 at 32x32): ``fuse_conv_bn``;
``to_channels_last``; both; and ``optimize_for_inference`` (both, then
``torch.compile`` with inductor's freezing). The plain-torch reference is
the fold a user writes by hand: ``torch.nn.utils.fusion.fuse_conv_bn_eval``
on every conv followed by its batch norm. The steps and the eager model
(plus a second eager copy: the A/A column, the noise floor) take turns
within each round; each speed-up is eager time over step time, from the
fastest rounds. The channels_last steps get their input in channels_last
memory, as a data pipeline would hand it over.

Targets (issue 14): fold >= 1.08x, fold + channels_last >= 1.35x,
optimize_for_inference >= 1.6x; and blockzoo's fold as fast as torch's
(it calls ``fuse_conv_bn_eval``).
Run alone: ``python -m benchmarks.bench_deploy``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
from collections.abc import Callable

import torch
from torch import nn

import blockzoo
from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings
from benchmarks._timing import alternate

#: model -> input side (None: the --side option, 224 by default)
MODELS = {"resnet18": None, "torchvision resnet18": None, "resnet56": 32, "simple_cnn": 32}
TARGETS = {"fuse_conv_bn": ">= 1.08", "fuse + channels_last": ">= 1.35", "optimize_for_inference": ">= 1.6"}


def _eager(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return model(x)

    return run


def torch_fold(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each ``Conv2d`` that a ``BatchNorm2d`` follows (same parent, next child) folded by torch."""
    model = copy.deepcopy(model).eval()
    for parent in model.modules():
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in itertools.pairwise(children):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, conv_name, torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    return model


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name.startswith("torchvision "):
        import torchvision

        return getattr(torchvision.models, name.split()[1])().eval()
    return blockzoo.create_model(name).eval()


def steps(name: str, x: torch.Tensor, *, compile: bool) -> tuple[dict[str, Callable[[], object]], str]:
    """The callables to time for one model, and a note on the compile."""
    model = _build(name)
    twin = copy.deepcopy(model)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    fused, folded = blockzoo.fuse_conv_bn(model), torch_fold(model)
    fns = {
        "eager": _eager(model, x),
        "A/A": _eager(twin, x),
        "fuse_conv_bn": _eager(fused, x),
        "torch fold": _eager(folded, x),
        "to_channels_last": _eager(blockzoo.to_channels_last(model), x_cl),
        "fuse + channels_last": _eager(blockzoo.to_channels_last(fused), x_cl),
        "torch fold + channels_last": _eager(copy.deepcopy(folded).to(memory_format=torch.channels_last), x_cl),
    }
    note = "optimize_for_inference not measured (quick run)"
    if compile:
        fast = blockzoo.optimize_for_inference(model, x_cl)
        report = fast.report
        note = (
            f"optimize_for_inference compiled in {report.compile_seconds:.1f} s (first call)"
            if report.compiled
            else f"optimize_for_inference did not compile ({report.compile_error}): eager"
        )
        fns["optimize_for_inference"] = lambda: fast(x_cl)
        # the same compile by hand, without blockzoo: channels_last and inductor's freezing on the unfolded model
        by_hand = torch.compile(copy.deepcopy(model).to(memory_format=torch.channels_last), options={"freezing": True})
        fns["torch compile + channels_last"] = _eager(by_hand, x_cl)
    return fns, note


def measure(
    name: str, x: torch.Tensor, *, rounds: int, min_run_time: float, compile: bool, warmup: int = 3
) -> list[Record | Skip]:
    """Each step's speed-up over the eager model, and blockzoo's fold against torch's."""
    fns, note = steps(name, x, compile=compile)
    times = alternate(fns, rounds=rounds, min_run_time=min_run_time, warmup=warmup)
    base = times["eager"]
    noise = min(base) / min(times["A/A"])
    shape = "x".join(map(str, x.shape))
    rows: list[Record | Skip] = []
    for step in ("fuse_conv_bn", "to_channels_last", "fuse + channels_last", "optimize_for_inference"):
        if step not in times:
            rows.append(Skip(f"deploy/{name}/{step}/vs eager", note))
            continue
        rows.append(
            Record.from_samples(
                f"deploy/{name}/{step}/vs eager",
                times[step],
                base,
                speedup=True,
                noise=noise,
                target=TARGETS.get(step),
                note=f"{shape}; {note}" if step == "optimize_for_inference" else "",
            )
        )
    pairs = [("fuse_conv_bn", "torch fold"), ("fuse + channels_last", "torch fold + channels_last")]
    if "optimize_for_inference" in times:
        pairs.append(("optimize_for_inference", "torch compile + channels_last"))
    for step, ref in pairs:
        rows.append(Record.from_samples(f"deploy/{name}/{step}/vs {ref}", times[step], times[ref], target="<= 1.02"))
    return rows


def cases(settings: Settings, *, side: int = 224) -> list[Case]:
    batch, rounds, min_run_time = (2, 1, 0.01) if settings.quick else (8, 5, 0.3)
    if settings.quick:
        side = 32
    out = []
    for name, model_side in MODELS.items():
        s = side if model_side is None else model_side

        def run(name: str = name, s: int = s) -> list[Record | Skip]:
            x = torch.randn(batch, 3, s, s)
            quick = settings.quick
            return measure(
                name, x, rounds=rounds, min_run_time=min_run_time, compile=not quick, warmup=0 if quick else 3
            )

        out.append(Case(f"deploy/{name}", run))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", type=int, default=224, help="resnet18's input side")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no optimize_for_inference")
    args = parser.parse_args()
    for case in cases(Settings(quick=args.quick), side=args.side):
        print_rows(case.run())
