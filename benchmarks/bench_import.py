"""``import blockzoo`` against ``import torch``, ``import torchvision`` and ``import timm``, as whole processes.

Each round starts one fresh interpreter per import, in rotating order, so
that all share the machine's noise; the ratio is the median of the per-round
ratios. The A/A row is a second ``import blockzoo`` process in each round.
blockzoo's ``.pyc`` files are written first (:func:`byte_compile`), as
installing a wheel does: torch's were written when pip installed it.
Run alone: ``python -m benchmarks.bench_import``.
"""

from __future__ import annotations

import argparse
import importlib.util

from benchmarks._report import Record, Skip, print_rows
from benchmarks._suite import Case, Settings
from benchmarks._timing import byte_compile, process_seconds, take_turns

TARGETS = {"torch": "<= 1.02", "torchvision": "<= 1.0", "timm": "<= 1.0"}


def measure(runs: int, *, warmup: int = 1) -> list[Record | Skip]:
    """The import rows from ``runs`` alternating rounds (after ``warmup`` rounds that fill the file cache)."""
    byte_compile("blockzoo")
    others = [name for name in TARGETS if name == "torch" or importlib.util.find_spec(name)]
    fns = {name: (lambda n=name: process_seconds(f"import {n}")) for name in ["blockzoo", "twin", *others]}
    fns["twin"] = lambda: process_seconds("import blockzoo")
    times = take_turns(fns, rounds=runs, warmup=warmup)
    rows: list[Record | Skip] = []
    for name in TARGETS:
        case = f"import/blockzoo vs {name}"
        if name not in times:
            rows.append(Skip(case, f"{name} is not installed"))
            continue
        rows.append(Record.from_medians(case, times["blockzoo"], times[name], twin=times["twin"], target=TARGETS[name]))
    return rows


def cases(settings: Settings) -> list[Case]:
    runs, warmup = (1, 0) if settings.quick else (8, 1)
    return [Case("import", lambda: measure(runs, warmup=warmup))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=8)
    print_rows(measure(parser.parse_args().runs))
