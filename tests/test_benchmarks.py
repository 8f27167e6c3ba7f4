"""The benchmark suite's machinery: records, the report on disk, --check, --only, the callgrind mode's skip, peak memory.

Nothing here times anything: the records are synthetic.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from benchmarks import _callgrind, _report, _suite
from benchmarks._report import Record, Report, Skip


def _report_with(*records: Record) -> Report:
    return Report(
        machine="box",
        date="2026-01-02",
        cpu="Some CPU (2 logical CPUs)",
        threads=2,
        versions={"torch": "2.x", "torchvision": "0.x", "timm": "not installed"},
        records=list(records),
        skipped=[Skip("gpu/resnet50", "no CUDA device")],
        notes=["a note"],
        seconds={"blocks/MLP": 1.5},
    )


MET = Record("blocks/MLP/small/fwd/vs torch", 1.0e-4, 1.0e-4, "s", 1.0, (0.98, 1.03), noise=1.01, target="<= 1.05")
MISSED = Record("import/blockzoo vs torch", 1.5, 1.4, "s", 1.5 / 1.4, (1.0, 1.2), noise=1.0, target="<= 1.02")
SPEEDUP = Record("deploy/resnet18/fuse_conv_bn/vs eager", 0.09, 0.1, "s", 1.1, (1.05, 1.12), target=">= 1.08")
EXPLAINED = Record(
    "models/vgg11_bn/forward/contiguous/vs torchvision",
    1.1,
    1.0,
    "s",
    1.1,
    (1.1, 1.1),
    target="<= 1.02",
    explained="the profile shows the same kernels",
)
REPORTED = Record("summary/resnet50/summary/vs forward", 2.0, 1.0, "s", 2.0, (2.0, 2.0))


def test_verdicts_follow_the_target_and_its_direction() -> None:
    assert MET.verdict == "met"
    assert MISSED.verdict == "missed"
    assert SPEEDUP.verdict == "met"  # higher is better: 1.1 >= 1.08
    assert Record("x", 1, 1, "s", 1.05, (1, 1), target=">= 1.08").verdict == "missed"
    assert EXPLAINED.verdict == "explained"
    assert REPORTED.verdict == "reported"


def test_a_miss_smaller_than_the_noise_floor_says_so() -> None:
    near = Record("x", 1, 1, "s", 1.03, (1, 1), noise=1.05, target="<= 1.02")
    far = Record("x", 1, 1, "s", 1.10, (1, 1), noise=1.05, target="<= 1.02")
    assert near.within_noise
    assert not far.within_noise
    assert not MET.within_noise


def test_from_samples_takes_the_fastest_rounds_and_the_range_of_round_ratios() -> None:
    r = Record.from_samples("x", [2.0, 3.0], [1.0, 2.0], twin=[2.5, 4.0], target="<= 1.05")
    assert (r.ours, r.reference, r.ratio) == (2.0, 1.0, 2.0)
    assert r.spread == (1.5, 2.0)
    assert r.noise == pytest.approx(1.25)
    fast = Record.from_samples("y", [1.0, 2.0], [2.0, 2.0], speedup=True, target=">= 1.5")
    assert fast.ratio == 2.0
    assert fast.spread == (1.0, 2.0)
    assert fast.verdict == "met"


def test_from_medians_takes_the_median_of_round_ratios() -> None:
    r = Record.from_medians("x", [1.0, 3.0, 2.0], [1.0, 1.0, 1.0], twin=[1.0, 3.0, 4.0])
    assert r.ratio == 2.0
    assert r.spread == (1.0, 3.0)
    assert r.noise == 1.0  # median of 1/1, 3/3, 4/2


def test_explained_patterns_attach_their_reason_to_misses_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_report.EXPLAINED, "import/*", "torch's own import varies by 5%")
    assert MISSED.explain().explained == "torch's own import varies by 5%"
    assert MISSED.explain().verdict == "explained"
    assert Record("import/x", 1, 1, "s", 1.0, (1, 1), target="<= 1.02").explain().explained is None


def test_a_target_needs_an_operator() -> None:
    with pytest.raises(ValueError, match=r"target starts with '<=' or '>='.*Received: target='1.05'"):
        _report.parse_target("1.05")


def test_the_report_round_trips_through_json(tmp_path) -> None:
    report = _report_with(MET, MISSED, SPEEDUP, EXPLAINED, REPORTED)
    md, js = report.write(tmp_path / "box-2026-01-02")
    assert (md.name, js.name) == ("box-2026-01-02.md", "box-2026-01-02.json")
    assert _report.read_report(js) == report
    data = json.loads(js.read_text())
    assert [row["verdict"] for row in data["records"]] == ["met", "missed", "met", "explained", "reported"]


def test_the_markdown_names_the_machine_and_has_one_row_per_record(tmp_path) -> None:
    text = _report_with(MET, MISSED).markdown()
    for line in ("- machine: box", "- CPU: Some CPU (2 logical CPUs)", "- threads: 2", "torch 2.x, torchvision 0.x"):
        assert line in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| case ")]
    assert [row.split(" | ")[0] for row in rows] == [f"| {MET.case}", f"| {MISSED.case}"]
    assert "gpu/resnet50: no CUDA device" in text


@pytest.mark.parametrize(
    ("records", "status"),
    [((MET, SPEEDUP, REPORTED), 0), ((MET, EXPLAINED), 0), ((MET, MISSED, EXPLAINED), 1)],
)
def test_check_fails_on_unexplained_misses_only(tmp_path, capsys, records, status) -> None:
    _, js = _report_with(*records).write(tmp_path / "r")
    assert _suite.main(["--check", str(js)]) == status
    out = capsys.readouterr().out
    assert (f"MISSED     {MISSED.case}" in out) == (MISSED in records)
    assert (f"explained  {EXPLAINED.case}" in out) == (EXPLAINED in records)


def test_check_without_a_path_reads_the_newest_report(tmp_path, monkeypatch, capsys) -> None:
    _report_with(MISSED).write(tmp_path / "old")
    _, newest = _report_with(MET).write(tmp_path / "new")
    monkeypatch.setattr(_suite, "latest_report", lambda: _report.latest_report(tmp_path))
    assert _suite.main(["--check"]) == 0
    assert str(newest) in capsys.readouterr().out


def _count(case: str, ratio: float, target: str = "<= 1.0") -> Record:
    return Record(f"callgrind/{case}", 1e6 * ratio, 1e6, "instructions", ratio, (ratio, ratio), target=target)


def _wall(case: str, ratio: float, target: str = "<= 1.0") -> Record:
    return Record(case, 1e-4 * ratio, 1e-4, "s", ratio, (ratio, ratio), noise=1.0, target=target)


def test_check_lets_the_instruction_count_decide_small_block_rows_both_ways(tmp_path, capsys) -> None:
    slow_wall = _wall("blocks/BasicBlock/small/fwd/vs torchvision", 1.05)  # wall time misses, the count meets
    fast_wall = _wall("blocks/BasicBlock/small/fwd+bwd/vs torchvision", 0.99)  # wall time meets, the count misses
    _, wall = _report_with(slow_wall, fast_wall).write(tmp_path / "box-2026-01-02")
    counts = (_count(slow_wall.case, 0.95), _count(fast_wall.case, 1.01))
    _, counted = _report_with(*counts).write(tmp_path / "box-2026-01-02-callgrind")
    assert _suite.main(["--check", str(wall)]) == 1  # alone, wall time decides: 1.05x misses
    alone = capsys.readouterr().out
    assert f"MISSED     {slow_wall.case}: 1.050x against <= 1.0" in alone
    assert fast_wall.case not in alone
    assert _suite.main(["--check", str(wall), str(counted)]) == 1
    out = capsys.readouterr().out
    assert f"by count   {slow_wall.case}: 0.950x in instructions (1.050x in wall time) against <= 1.0" in out
    assert f"MISSED     {fast_wall.case}: 1.010x in instructions (0.990x in wall time) against <= 1.0" in out
    assert "1 met, 0 explained, 1 missed (1 met by their instruction count)" in out
    assert "callgrind/" not in out.split("records")[-1]  # a count that decides a row is not listed again


def test_an_explained_count_explains_the_row_it_decides(tmp_path, capsys, monkeypatch) -> None:
    wall = _wall("blocks/MLP/small/fwd/vs torchvision", 1.03)
    _, js = _report_with(wall, _count(wall.case, 1.003)).write(tmp_path / "r")  # written before the reason existed
    monkeypatch.setitem(_report.EXPLAINED, "callgrind/blocks/MLP/*", "the input check")
    assert _suite.main(["--check", str(js)]) == 0
    out = capsys.readouterr().out
    assert (
        f"explained  {wall.case}: 1.003x in instructions (1.030x in wall time) against <= 1.0: the input check" in out
    )
    assert "0 met, 1 explained, 0 missed" in out


def test_only_small_block_rows_and_the_import_against_torch_are_decided_by_their_count(tmp_path, capsys) -> None:
    rows = [
        _wall("blocks/MLP/realistic/fwd/vs torch", 1.05, "<= 1.02"),  # no same_kernels: wall time decides
        _wall("models/resnet18/forward/contiguous/vs torchvision", 1.06, "<= 1.02"),
        _wall("import/blockzoo vs torchvision", 1.03),
    ]
    compiled = _wall("blocks/MLP/small/fwd/compiled vs torch", 1.07, "<= 1.05")
    counts = [_count(r.case, 0.9, r.target or "") for r in [*rows, compiled]]
    _, js = _report_with(*rows, compiled, *counts).write(tmp_path / "r")
    assert _suite.main(["--check", str(js)]) == 1
    out = capsys.readouterr().out
    assert all(f"MISSED     {r.case}" in out for r in rows)
    assert f"by count   {compiled.case}: 0.900x in instructions (1.070x in wall time) against <= 1.05" in out
    assert "4 met, 0 explained, 3 missed (1 met by their instruction count)" in out  # 3 counts stand on their own


def test_a_realistic_row_with_the_same_kernels_takes_the_small_count_held_to_its_own_target(tmp_path, capsys) -> None:
    met = _wall("blocks/BasicBlock/realistic/fwd/vs torch", 1.06, "<= 1.02")  # wall misses; overhead 1.01x counted
    strict = _wall("blocks/BasicBlock/realistic/fwd+bwd/vs torch", 0.97, "<= 1.02")  # 1.03x: met at small, not here
    other = _wall("blocks/MLP/realistic/fwd/vs torch", 1.06, "<= 1.02")  # other kernels: wall time decides
    rows = [
        dataclasses.replace(met, same_kernels=True),
        dataclasses.replace(strict, same_kernels=True),
        dataclasses.replace(other, same_kernels=False),
    ]
    counts = [
        _count("blocks/BasicBlock/small/fwd/vs torch", 1.01, "<= 1.05"),
        _count("blocks/BasicBlock/small/fwd+bwd/vs torch", 1.03, "<= 1.05"),
        _count("blocks/MLP/small/fwd/vs torch", 0.9, "<= 1.05"),
    ]
    _, js = _report_with(*rows, *counts).write(tmp_path / "r")
    assert _suite.main(["--check", str(js)]) == 1
    out = capsys.readouterr().out
    assert (
        f"by count   {met.case}: same kernels as the reference, and 1.010x in instructions at the small shape "
        "(1.060x in wall time) against <= 1.02" in out
    )
    assert f"MISSED     {strict.case}: same kernels as the reference, and 1.030x in instructions" in out
    assert f"MISSED     {other.case}: 1.060x against <= 1.02" in out
    # BasicBlock's counts decide the realistic rows and are not listed again; MLP's decides none and stands alone
    assert "2 met, 0 explained, 2 missed (1 met by their instruction count)" in out


def test_a_realistic_row_with_the_same_kernels_takes_the_explanation_of_the_count_it_is_decided_by(
    tmp_path, capsys, monkeypatch
) -> None:
    row = dataclasses.replace(_wall("blocks/ConvNormAct/realistic/fwd/vs torchvision", 1.15), same_kernels=True)
    count = _count("blocks/ConvNormAct/small/fwd/vs torchvision", 1.005)
    monkeypatch.setitem(_report.EXPLAINED, "callgrind/blocks/ConvNormAct/small/*/vs torchvision", "the input check")
    _, js = _report_with(row, count).write(tmp_path / "r")
    assert _suite.main(["--check", str(js)]) == 0
    out = capsys.readouterr().out
    assert f"explained  {row.case}: same kernels as the reference, and 1.005x in instructions at the small shape" in out
    assert out.rstrip().endswith("0 met, 1 explained, 0 missed")


def test_a_report_written_before_same_kernels_reads_as_not_looked_at(tmp_path) -> None:
    _, js = _report_with(MET).write(tmp_path / "r")
    data = json.loads(js.read_text())
    for row in data["records"]:
        del row["same_kernels"]
    js.write_text(json.dumps(data))
    assert _report.read_report(js).records[0].same_kernels is None


def test_the_same_kernels_mark_round_trips_and_shows_in_the_markdown(tmp_path) -> None:
    row = dataclasses.replace(_wall("blocks/BasicBlock/realistic/fwd/vs torch", 1.0, "<= 1.02"), same_kernels=True)
    md, js = _report_with(row, MET).write(tmp_path / "r")
    assert _report.read_report(js).records == [row, MET]
    assert "| met; same kernels |" in md.read_text()


def test_check_without_a_path_also_reads_the_counts_of_the_same_run(tmp_path, monkeypatch, capsys) -> None:
    wall = _wall("blocks/MLP/small/fwd/vs torch", 1.07, "<= 1.05")
    _, js = _report_with(wall).write(tmp_path / "box-2026-01-02")
    _, counted = _report_with(_count(wall.case, 0.99, "<= 1.05")).write(tmp_path / "box-2026-01-02-callgrind")
    monkeypatch.setattr(_suite, "latest_report", lambda: counted)  # the newest is the counts: its wall report too
    assert _suite.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert str(js) in out
    assert str(counted) in out
    assert f"by count   {wall.case}" in out
    assert _report.counts_beside(tmp_path / "other.json") == [tmp_path / "other.json"]


def test_callgrind_counts_each_block_against_every_reference_forward_and_backward(monkeypatch) -> None:
    monkeypatch.setattr(_callgrind, "available", lambda: True)
    counted: list[tuple[str, str, bool]] = []

    def fake(block: str, side: str, *, backward: bool = False) -> float:
        counted.append((block, side, backward))
        return 100.0 if side == "ours" else 125.0

    monkeypatch.setattr(_callgrind, "block_instructions", fake)
    cases = {c.name: c for c in _callgrind.cases(_suite.Settings(callgrind=True))}
    from benchmarks.bench_blocks import blocks

    refs = {b.name: list(b.refs) for b in blocks()}
    assert "torchvision" in refs["BasicBlock"]
    rows = cases["callgrind/blocks/BasicBlock"].run()
    assert [r.case for r in rows] == [
        f"callgrind/blocks/BasicBlock/small/{mode}/vs {ref}"
        for mode in ("fwd", "fwd+bwd")
        for ref in refs["BasicBlock"]
    ]
    assert all(isinstance(r, Record) and r.ratio == 0.8 and r.unit == "instructions" for r in rows)
    assert {(side, backward) for _, side, backward in counted} == {
        (side, backward) for side in ["ours", *refs["BasicBlock"]] for backward in (False, True)
    }
    assert set(cases) >= {f"callgrind/blocks/{name}" for name, r in refs.items() if r}


def test_callgrind_counts_compiled_blocks_against_compiled_hand_written_torch(monkeypatch) -> None:
    monkeypatch.setattr(_callgrind, "available", lambda: True)
    counted: list[tuple[str, str, bool, bool]] = []

    def fake(block: str, side: str, *, backward: bool = False, compiled: bool = False) -> float:
        counted.append((block, side, backward, compiled))
        return 105.0 if side == "ours" else 100.0

    monkeypatch.setattr(_callgrind, "block_instructions", fake)
    cases = {c.name: c for c in _callgrind.cases(_suite.Settings(callgrind=True))}
    from benchmarks.bench_blocks import COMPILED

    assert {f"callgrind/blocks-compiled/{name}" for name in COMPILED} <= set(cases)
    rows = cases["callgrind/blocks-compiled/MLP"].run()
    assert [r.case for r in rows] == [
        "callgrind/blocks/MLP/small/fwd/compiled vs torch",
        "callgrind/blocks/MLP/small/fwd+bwd/compiled vs torch",
    ]
    assert all(isinstance(r, Record) and r.ratio == 1.05 and r.target == "<= 1.05" for r in rows)
    assert counted == [("MLP", side, b, True) for b in (False, True) for side in ("ours", "torch")]


def _seen_by_count(
    monkeypatch, machine: str, flags: set[str], *, compiled: bool = True
) -> dict[str, dict[str, str | None]]:
    """What the native compile and the counted run of one count find in their environments, and what is left after."""
    import os
    import subprocess

    import torch.utils.benchmark

    for name in _callgrind.AVX2_ONLY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_callgrind.platform, "machine", lambda: machine)
    monkeypatch.setattr(_callgrind, "_cpu_flags", lambda: flags)
    seen: dict[str, dict[str, str | None]] = {}

    def warm(cmd: list[str], *, env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert "torch.compile(m)" in cmd[-1]
        seen["native compile"] = {name: env.get(name) for name in _callgrind.AVX2_ONLY}
        return subprocess.CompletedProcess(cmd, 0, "", "")

    class Counted:
        def __init__(self, stmt: str, setup: str) -> None:
            assert ("torch.compile(m)" in setup) == compiled

        def collect_callgrind(self, number: int) -> object:
            seen["count"] = {name: os.environ.get(name) for name in _callgrind.AVX2_ONLY}
            return type("Stats", (), {"counts": lambda self, denoise: 1000.0 * number})()

    monkeypatch.setattr(_callgrind.subprocess, "run", warm)
    monkeypatch.setattr(torch.utils.benchmark, "Timer", Counted)
    assert _callgrind.block_instructions("ConvNormAct", "ours", compiled=compiled) == 1000.0
    seen["after"] = {name: os.environ.get(name) for name in _callgrind.AVX2_ONLY}
    return seen


NOTHING = dict.fromkeys(_callgrind.AVX2_ONLY)


@pytest.mark.parametrize("machine", ["x86_64", "AMD64"])
def test_compiled_counts_build_inductors_kernels_for_avx2_natively_and_under_valgrind(monkeypatch, machine) -> None:
    # valgrind cannot run AVX-512; the native compile must use the same flags, or its cached kernels are not found
    seen = _seen_by_count(monkeypatch, machine, {"avx2", "fma", "avx512f"})
    avx2 = {"ATEN_CPU_CAPABILITY": "avx2", "TORCHINDUCTOR_CPP_MARCH": "x86-64-v3"}
    assert seen["native compile"] == seen["count"] == avx2
    assert seen["after"] == NOTHING  # the caller's environment is given back as it was


@pytest.mark.parametrize(
    ("machine", "flags"),
    [("aarch64", {"asimd", "sve"}), ("x86_64", {"avx2", "fma"}), ("x86_64", {"sse4_2"}), ("x86_64", set())],
)
def test_compiled_counts_leave_the_flags_alone_where_valgrind_runs_the_native_kernels(
    monkeypatch, machine, flags
) -> None:
    # no AVX-512 to avoid; and a CPU without AVX2 could not run x86-64-v3 code
    seen = _seen_by_count(monkeypatch, machine, flags)
    assert seen["native compile"] == seen["count"] == seen["after"] == NOTHING


def test_eager_counts_do_not_change_the_cpu_capability(monkeypatch) -> None:
    seen = _seen_by_count(monkeypatch, "x86_64", {"avx2", "fma", "avx512f"}, compiled=False)
    assert "native compile" not in seen  # nothing to compile first
    assert seen["count"] == seen["after"] == NOTHING


def test_cpu_flags_are_read_from_linux(monkeypatch, tmp_path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma avx512f\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    real = _callgrind.Path
    monkeypatch.setattr(_callgrind, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real(p))
    assert _callgrind._cpu_flags() == {"fpu", "avx2", "fma", "avx512f"}
    cpuinfo.unlink()
    assert _callgrind._cpu_flags() == set()


def test_a_compiled_count_that_valgrind_cannot_run_is_skipped_saying_why(monkeypatch) -> None:
    monkeypatch.setattr(_callgrind, "available", lambda: True)

    def stopped(block: str, side: str, *, backward: bool = False, compiled: bool = False) -> float:
        raise OSError(
            "Failed to collect callgrind profile: ... Process terminating with default action of signal 4 (SIGILL)"
        )

    monkeypatch.setattr(_callgrind, "block_instructions", stopped)
    with pytest.raises(_suite.Skipped, match=r"ConvNormAct use instructions valgrind cannot run \(SIGILL\)"):
        _callgrind.measure_compiled("ConvNormAct")

    def other(block: str, side: str, *, backward: bool = False, compiled: bool = False) -> float:
        raise OSError("Failed to collect callgrind profile: no such file")

    monkeypatch.setattr(_callgrind, "block_instructions", other)
    with pytest.raises(OSError, match="no such file"):
        _callgrind.measure_compiled("ConvNormAct")


def _fake_cases(ran: list[str]) -> list[_suite.Case]:
    def case(name: str) -> _suite.Case:
        def run() -> list[Record | Skip]:
            ran.append(name)
            return [Record(f"{name}/vs torch", 1, 1, "s", 1.0, (1, 1), target="<= 1.05")]

        return _suite.Case(name, run)

    return [case(n) for n in ("import", "blocks/MLP", "blocks/ConvBlock", "models/resnet18")]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (None, ["import", "blocks/MLP", "blocks/ConvBlock", "models/resnet18"]),
        (["MLP"], ["blocks/MLP"]),
        (["blocks/*"], ["blocks/MLP", "blocks/ConvBlock"]),
        (["*Block", "import"], ["import", "blocks/ConvBlock"]),
        (["nothing"], []),
    ],
)
def test_only_selects_by_substring_or_fnmatch(patterns, expected) -> None:
    assert [c.name for c in _suite.select(_fake_cases([]), patterns)] == expected


def test_only_runs_and_reports_the_selected_cases(tmp_path, monkeypatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(_suite, "collect", lambda settings: _fake_cases(ran))
    assert _suite.main(["--only", "blocks/*", "--machine", "box", "--output", str(tmp_path / "r")]) == 0
    assert ran == ["blocks/MLP", "blocks/ConvBlock"]
    report = _report.read_report(tmp_path / "r.json")
    assert [r.case for r in report.records] == ["blocks/MLP/vs torch", "blocks/ConvBlock/vs torch"]
    assert (report.machine, report.mode) == ("box", "full, only blocks/*")
    assert _suite.main(["--only", "nothing", "--output", str(tmp_path / "s")]) == 2


def test_a_failing_case_is_listed_and_fails_the_run(tmp_path, monkeypatch) -> None:
    def broken() -> list[Record | Skip]:
        raise RuntimeError("boom")

    monkeypatch.setattr(_suite, "collect", lambda settings: [_suite.Case("broken", broken)])
    assert _suite.main(["--output", str(tmp_path / "r")]) == 1
    assert _report.read_report(tmp_path / "r.json").skipped == [Skip("broken", "failed: RuntimeError: boom")]


def test_callgrind_mode_is_off_without_the_flag() -> None:
    assert _callgrind.cases(_suite.Settings()) == []


def test_callgrind_mode_says_valgrind_is_missing_and_skips(monkeypatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda cmd: None)
    assert not _callgrind.available()
    cases = [
        _suite.Case("callgrind/import", _callgrind.measure_import),
        _suite.Case("callgrind/A-A", _callgrind.measure_aa),
    ]
    report = _suite.run(cases, _report_with())
    reasons = [s.reason for s in report.skipped if s.case.startswith("callgrind")]
    assert reasons == [_callgrind.INSTALL, _callgrind.INSTALL]
    assert "apt-get install valgrind" in _callgrind.INSTALL
    with pytest.raises(_suite.Skipped, match="apt-get install valgrind"):
        _callgrind.measure_block("MLP")


def test_callgrind_counts_dropblock_against_torchvisions_from_the_same_seed() -> None:
    names = [c.name for c in _callgrind.cases(_suite.Settings(callgrind=True))]
    assert "callgrind/blocks/DropBlock" in names  # no hand-written torch DropBlock: torchvision's is its reference
    from torchvision.ops import DropBlock2d

    import blockzoo

    built = {}
    try:
        for side in ("ours", "torchvision"):
            ns: dict[str, object] = {}
            exec(_callgrind._setup("DropBlock", side, backward=False), ns)  # what the counted interpreter runs first
            built[side] = ns
    finally:
        torch.set_grad_enabled(True)
    ours, theirs = built["ours"]["m"], built["torchvision"]["m"]
    assert isinstance(ours, blockzoo.DropBlock)
    assert isinstance(theirs, DropBlock2d)
    assert ours.training  # dropout-like blocks do nothing in eval mode
    assert theirs.training
    assert (ours.p, ours.block_size) == (theirs.p, theirs.block_size)
    assert torch.equal(built["ours"]["x"], built["torchvision"]["x"])


def test_the_optimizer_bound_is_the_bytes_over_the_measured_bandwidth(monkeypatch) -> None:
    from benchmarks import _bandwidth, bench_optim

    measured = _bandwidth.Bandwidth(copy=30e9, read_read_write=40e9, nbytes=1)
    monkeypatch.setattr(bench_optim, "measure_bandwidth", lambda: measured)
    seconds, how = bench_optim.bandwidth_bound("adamw", 10**6)
    assert seconds == pytest.approx(7 * 4 * 10**6 / 40e9)  # param, grad and two moments read; three written
    assert "40.0 GB/s" in how
    assert bench_optim.bandwidth_bound("sgd", 10**6)[0] == pytest.approx(5 * 4 * 10**6 / 40e9)


class _ViewsAndInPlace(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 2  # the only new tensor
        y.relu_()
        return y.view(-1)


def test_peak_memory_counts_what_the_forward_allocates_not_the_weights_it_views() -> None:
    from benchmarks.bench_models import peak_bytes

    # F.linear runs addmm on a transposed view of the weight: only the [4, 256] product is new memory.
    assert peak_bytes(torch.nn.Linear(256, 256), torch.randn(4, 256)) == 4 * 256 * 4
    # Views of the input and in-place results allocate nothing.
    assert peak_bytes(_ViewsAndInPlace(), torch.randn(8, 32)) == 8 * 32 * 4


def test_peak_memory_is_the_most_alive_at_once_not_the_sum() -> None:
    from benchmarks.bench_models import peak_bytes

    model = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 64))
    # The ReLU's output is made while the first product is alive; the first product is gone before the last
    # layer runs (nn.Sequential lets go of each input), so two [8, 512] float32 tensors are the peak.
    assert peak_bytes(model, torch.randn(8, 64)) == 2 * 8 * 512 * 4


class _OutAndResize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.add(x, x, out=torch.empty(0))  # out= resizes the empty tensor: a new storage of x's size
        out.resize_(2 * x.numel())  # a larger storage again, the old one freed
        return out


def test_peak_memory_counts_what_out_and_resize_ops_allocate() -> None:
    from benchmarks.bench_models import peak_bytes

    x = torch.randn(8, 32)
    # the first storage (x's size) is alive while resize_ allocates the second (twice x's size), then freed
    assert peak_bytes(_OutAndResize(), x) == 3 * x.nbytes
