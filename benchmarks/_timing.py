"""Timing helpers shared by the benchmarks: alternating runs, medians, ratios."""

from __future__ import annotations

import compileall
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from torch.utils import benchmark


def median_seconds(fn: Callable[[], object], min_run_time: float) -> float:
    """Median time of one call of ``fn``, from torch.utils.benchmark."""
    return benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def alternate(
    fns: dict[str, Callable[[], object]], *, rounds: int, min_run_time: float, warmup: int = 3
) -> dict[str, list[float]]:
    """Per-round median times of each function, measured in alternation so that they share the machine's noise.

    The order within a round rotates, so no function always runs first.
    """
    for fn in fns.values():  # warm up: allocator, kernels, lazy init
        for _ in range(warmup):
            fn()
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(median_seconds(fns[name], min_run_time))
    return samples


def interleave(fns: dict[str, Callable[[], object]], *, calls: int, warmup: int = 2) -> dict[str, list[float]]:
    """Wall time of single calls, the functions taking turns call by call (rotating order).

    For calls long enough (tenths of a second) that one call is a fair sample:
    neighbouring calls share the machine's state, so slow phases hit all of
    them alike.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(calls):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def take_turns(fns: dict[str, Callable[[], float]], *, rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Samples that each function measures itself, the functions taking turns round by round (rotating order).

    For runs whose set-up (copying a model, building data) must stay outside
    the timer: each function times what it is about and returns the seconds.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(fns[name]())
    return samples


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median over rounds of ``a / b``: each round's pair ran back to back."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def best_ratio(a: list[float], b: list[float]) -> float:
    """``min(a) / min(b)``: interference only ever adds time, so the fastest round is the least disturbed."""
    return min(a) / min(b)


def byte_compile(package: str = "blockzoo", *, folder: Path | None = None) -> None:
    """Write the ``.pyc`` files of ``package`` (or of the package in ``folder``), as installing its wheel does.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (set on some CI
    machines) never writes them, so every fresh interpreter would compile the
    package's source again; torch's files were compiled when pip installed it.
    Timing an import without this compares compiling against loading.
    """
    if folder is None:
        spec = importlib.util.find_spec(package)
        folders = [Path(f) for f in (spec.submodule_search_locations or [])] if spec else []
    else:
        folders = [folder]
    for path in folders:
        compileall.compile_dir(str(path), quiet=1)


def process_seconds(code: str) -> float:
    """Wall time of a fresh interpreter running ``code``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start
