"""The suite behind ``python -m benchmarks``: the cases of every bench module, selection, the run and the report."""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks._report import (
    RESULTS,
    Record,
    Report,
    Skip,
    check,
    counts_beside,
    latest_report,
    machine_report,
    print_rows,
)

#: The bench modules, in the order the suite runs them.
MODULES = (
    "bench_import",
    "bench_blocks",
    "bench_models",
    "bench_optim",
    "bench_regularization",
    "bench_init",
    "bench_deploy",
    "bench_summary",
    "bench_fit",
    "bench_gpu",
    "_callgrind",
)


@dataclass(frozen=True)
class Settings:
    """How the suite runs: ``quick`` (every case once at tiny sizes) and ``callgrind`` (instruction counts)."""

    quick: bool = False
    callgrind: bool = False


class Skipped(Exception):
    """Raised by a case that cannot run here; the message is the reason, which the report lists."""


@dataclass(frozen=True)
class Case:
    """One named case of the suite; ``run`` returns its records and the rows it skipped (or raises :class:`Skipped`)."""

    name: str
    run: Callable[[], list[Record | Skip]]


def collect(settings: Settings, modules: Iterable[str] = MODULES) -> list[Case]:
    """Every case of the bench modules, in order."""
    cases: list[Case] = []
    for module in modules:
        cases += importlib.import_module(f"benchmarks.{module}").cases(settings)
    return cases


def select(cases: Sequence[Case], patterns: Sequence[str] | None) -> list[Case]:
    """The cases whose name matches one of the patterns (an fnmatch pattern or a plain substring); all without any."""
    if not patterns:
        return list(cases)
    return [c for c in cases if any(fnmatch.fnmatchcase(c.name, p) or p in c.name for p in patterns)]


def run(cases: Sequence[Case], report: Report) -> Report:
    """Run the cases one after the other, adding their records (or why they were skipped or failed) to ``report``."""
    for case in cases:
        print(f"== {case.name}", flush=True)
        start = time.perf_counter()
        try:
            rows = case.run()
        except Skipped as why:
            report.skipped.append(Skip(case.name, str(why)))
            print(f"   skipped: {why}", flush=True)
        except Exception as error:  # noqa: BLE001 (one broken case must not lose the others' figures)
            traceback.print_exc()
            report.skipped.append(Skip(case.name, f"failed: {type(error).__name__}: {error}"))
        else:
            report.records += [r for r in rows if isinstance(r, Record)]
            report.skipped += [r for r in rows if isinstance(r, Skip)]
            print_rows(rows)
        report.seconds[case.name] = time.perf_counter() - start
    return report


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run blockzoo's benchmarks against plain torch, torchvision, timm and Lightning, and write a report.",
    )
    p.add_argument("--only", action="append", metavar="PATTERN", help="run the cases matching PATTERN (repeatable)")
    p.add_argument("--quick", action="store_true", help="every case once at tiny sizes (a smoke test)")
    p.add_argument("--callgrind", action="store_true", help="add the instruction counts (valgrind; minutes per row)")
    p.add_argument("--list", action="store_true", help="print the case names and exit")
    p.add_argument("--machine", help="the machine's name in the report (default: the host name)")
    p.add_argument("--output", type=Path, help="report path without suffix (default: benchmarks/results/MACHINE-DATE)")
    p.add_argument(
        "--check",
        nargs="*",
        type=Path,
        metavar="REPORT",
        help=(
            "run nothing: read the REPORTs (JSON; default the newest in benchmarks/results/ and its -callgrind "
            "counts) and exit 1 if a target is missed; a small-shape block row with an instruction count takes "
            "the count's verdict"
        ),
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The entry point of ``python -m benchmarks``; returns the exit status."""
    args = parser().parse_args(argv)
    if args.check is not None:
        return check(args.check or counts_beside(latest_report()))
    settings = Settings(quick=args.quick, callgrind=args.callgrind)
    cases = select(collect(settings), args.only)
    if args.list:
        print("\n".join(c.name for c in cases))
        return 0
    if not cases:
        print(f"no case matches {args.only}; `python -m benchmarks --list` shows them", file=sys.stderr)
        return 2
    mode = ("quick" if args.quick else "full") + (", callgrind" if args.callgrind else "")
    if args.only:
        mode += f", only {' '.join(args.only)}"
    report = run(cases, machine_report(machine=args.machine, mode=mode))
    suffix = ("-quick" if args.quick else "") + ("-partial" if args.only else "")
    stem = args.output or RESULTS / f"{report.machine}-{report.date}{suffix}"
    md, js = report.write(stem)
    failed = [s for s in report.skipped if s.reason.startswith("failed:")]
    print(f"wrote {md} and {js}: {len(report.records)} records, {len(report.missed)} missed targets")
    if failed:
        print(f"{len(failed)} case(s) failed: {', '.join(s.case for s in failed)}", file=sys.stderr)
    return 1 if failed else 0
