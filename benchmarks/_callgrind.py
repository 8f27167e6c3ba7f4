"""Instruction counts (``--callgrind``): the small-shape block rows and the import, where Python overhead is the question.

Wall time on a shared two-core machine cannot tell 1.01x from 1.03x; the
number of instructions a call executes can. Each block row runs
``torch.utils.benchmark.Timer(...).collect_callgrind(number=100)``: valgrind
starts a fresh interpreter (the ``python`` first on ``PATH``, so the running
interpreter's directory is put first), builds the module in the setup code
and counts only the 100 timed calls. The import rows run
``valgrind --tool=callgrind python -c "import X"`` and read the program's
total: the import cannot be a ``Timer`` statement, since the module is only
imported once per process. An A/A row measures blockzoo's ConvNormAct twice:
its ratio is 1.00 up to the counting's own noise (well under 1%).

Every block is counted against each of its references (hand-written torch,
torchvision, timm), forward and forward+backward, as the wall-time rows at
the small shape are: ``python -m benchmarks --check`` lets these counts
decide those rows when it is given both reports. Each measurement takes
about a minute under valgrind, so the mode is off unless ``--callgrind`` is
given; ``--only callgrind/blocks/MLP`` picks rows. The compiled rows (``callgrind/blocks-compiled/``) count
``torch.compile`` of each side against the hand-written torch block, as the compiled wall rows compare.
Install valgrind with ``apt-get install valgrind`` (Debian and Ubuntu); without it
the cases say so and are skipped.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks._report import Record, Skip
from benchmarks._suite import Case, Settings, Skipped
from benchmarks._timing import byte_compile

ROOT = Path(__file__).resolve().parent.parent
NUMBER = 100
INSTALL = "valgrind is not installed (Debian/Ubuntu: apt-get install valgrind)"


def available() -> bool:
    """Whether valgrind and the callgrind tools that torch's Timer calls are on ``PATH``."""
    return all(shutil.which(cmd) for cmd in ("valgrind", "callgrind_control", "callgrind_annotate"))


# What valgrind can run (3.19 here): no AVX-512. Inductor picks its vector ISA from ATEN_CPU_CAPABILITY and builds
# its kernels with -march=native unless TORCHINDUCTOR_CPP_MARCH names another target (torch 2.14 reads it); on an
# AVX-512 CPU either puts EVEX-encoded instructions in the kernels, and valgrind stops on them with SIGILL.
# x86-64-v3 is AVX2, FMA, BMI1/2, F16C and the like, all of which valgrind runs.
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "TORCHINDUCTOR_CPP_MARCH": "x86-64-v3"}


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where ``/proc/cpuinfo`` is missing)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    return set()


def _compile_environment() -> dict[str, str]:
    """What the compiled counts add to the environment: :data:`AVX2_ONLY` on an x86-64 CPU with AVX-512, else nothing.

    A CPU without AVX-512 needs nothing (its native kernels run under valgrind), and one without AVX2 could not run
    x86-64-v3 code at all.
    """
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return dict(AVX2_ONLY) if x86 and "avx512f" in _cpu_flags() else {}


@contextlib.contextmanager
def _environment(compiled: bool = False) -> Iterator[dict[str, str]]:
    """``PATH`` with this interpreter's directory first, ``PYTHONPATH`` with the repository and ``src/``.

    With ``compiled=True`` also :data:`AVX2_ONLY` on an x86-64 CPU with AVX-512, for the native compile and the
    counted one alike (the flags are part of the key of inductor's on-disk cache). Values the caller set for these
    two variables are replaced there, and given back afterwards.
    """
    saved = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, saved.get("PATH", "")])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "src"), saved.get("PYTHONPATH")) if p)
    os.environ["PYTHONHASHSEED"] = "0"  # the same dict layouts in every process
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # compiled rows: no pool of compile workers under valgrind
    if compiled:
        os.environ.update(_compile_environment())
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _setup(block: str, side: str, backward: bool) -> str:
    """Setup code of one side: ``"ours"`` or a reference's name in ``Block.refs``, built after the same seed."""
    return "\n".join(
        [
            "import torch",
            "from benchmarks.bench_blocks import SHAPES, blocks",
            f"b = {{b.name: b for b in blocks()}}[{block!r}]",
            "torch.manual_seed(0)",
            f"x = b.to_input(torch.randn(SHAPES['small'])).requires_grad_({backward})",  # as the wall rows' input
            f"m = (b.ours if {side!r} == 'ours' else b.refs[{side!r}])(SHAPES['small'][1])",
            f"m.train({backward} or b.always_train)",
            f"torch.set_grad_enabled({backward})",
        ]
    )


def block_instructions(block: str, side: str, *, backward: bool = False, compiled: bool = False) -> float:
    """Instructions per call of one block's forward: blockzoo's (``side="ours"``) or a reference's (``"torch"``, ...).

    With ``compiled=True`` the setup compiles the module with ``torch.compile`` and calls it three times, so the
    count covers what a compiled call costs once compiled: dynamo's guards, the compiled graph and its kernels. The
    same setup runs natively first, so the compile under valgrind finds inductor's kernels in its on-disk cache
    (compiling them under valgrind would take hours; with the cache, several minutes). Valgrind cannot run
    AVX-512, so on a CPU that has it both compiles build inductor's kernels for AVX2 (:data:`AVX2_ONLY`): the two
    sides are compiled with the same instruction set and flags, and the count asks what a compiled call costs with
    those kernels, not with the ones a native AVX-512 run would use. Should a count still stop on an instruction valgrind cannot run
    (SIGILL), :func:`measure_compiled` skips the block, saying so.
    """
    from torch.utils.benchmark import Timer

    stmt = "m(x).sum().backward()" if backward else "m(x)"
    setup = _setup(block, side, backward)
    if compiled:
        setup += f"\nm = torch.compile(m)\nfor _ in range(3):\n    {stmt}"
    with _environment(compiled) as env:
        if compiled:
            warm = subprocess.run([sys.executable, "-c", setup], env=env, capture_output=True, text=True)
            if warm.returncode:
                raise RuntimeError(
                    f"compiling {block} ({side}) natively failed (exit status {warm.returncode}):\n{warm.stderr}"
                )
        stats = Timer(stmt=stmt, setup=setup).collect_callgrind(number=NUMBER)
    return float(stats.counts(denoise=True)) / NUMBER


def import_instructions(module: str) -> float:
    """Instructions of a whole interpreter that imports ``module``, start-up included."""
    with _environment() as env, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", f"import {module}"],
            env=env,
            check=True,
            capture_output=True,
        )
        match = re.search(r"^(?:totals|summary):\s*(\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no instruction total in the callgrind output of `import {module}`")
    return float(match.group(1))


def _record(case: str, ours: float, reference: float, *, target: str | None, noise: float | None = None) -> Record:
    ratio = ours / reference
    return Record(case, ours, reference, "instructions", ratio, (ratio, ratio), noise=noise, target=target).explain()


def measure_block(block: str, references: tuple[str, ...] = ("torch",)) -> list[Record | Skip]:
    """blockzoo's block against each reference: instructions per forward and per forward+backward at the small shape.

    The rows are named as the wall-time rows they decide, behind ``callgrind/``.
    """
    from benchmarks.bench_blocks import target

    if not available():
        raise Skipped(INSTALL)
    rows: list[Record | Skip] = []
    for backward in (False, True):
        ours = block_instructions(block, "ours", backward=backward)
        mode = "fwd+bwd" if backward else "fwd"
        rows += [
            _record(
                f"callgrind/blocks/{block}/small/{mode}/vs {ref}",
                ours,
                block_instructions(block, ref, backward=backward),
                target=target(ref, "small"),
            )
            for ref in references
        ]
    return rows


def measure_compiled(block: str) -> list[Record | Skip]:
    """``torch.compile`` of blockzoo's block against that of the hand-written torch one, as the compiled wall rows."""
    from benchmarks.bench_blocks import target

    if not available():
        raise Skipped(INSTALL)
    rows: list[Record | Skip] = []
    for backward in (False, True):
        mode = "fwd+bwd" if backward else "fwd"
        try:
            ours, ref = (
                block_instructions(block, side, backward=backward, compiled=True) for side in ("ours", "torch")
            )
        except OSError as error:  # Timer's report of a valgrind that stopped: an instruction it cannot run
            if "SIGILL" not in str(error):
                raise
            raise Skipped(f"inductor's kernels for {block} use instructions valgrind cannot run (SIGILL)") from error
        rows.append(
            _record(
                f"callgrind/blocks/{block}/small/{mode}/compiled vs torch", ours, ref, target=target("torch", "small")
            )
        )
    return rows


def measure_aa(block: str = "ConvNormAct") -> list[Record | Skip]:
    """The same blockzoo block counted twice: the A/A ratio of the instruction counts."""
    if not available():
        raise Skipped(INSTALL)
    first, second = block_instructions(block, "ours"), block_instructions(block, "ours")
    return [_record(f"callgrind/A-A/{block}/small/fwd/vs itself", second, first, target="<= 1.01")]


def measure_import() -> list[Record | Skip]:
    """``import blockzoo`` against ``import torch`` in instructions, with ``import torch`` counted twice as A/A."""
    if not available():
        raise Skipped(INSTALL)
    byte_compile(
        folder=ROOT / "src" / "blockzoo"
    )  # the copy the counted interpreters import (PYTHONPATH), as installed
    torch_first, ours, torch_second = (import_instructions(m) for m in ("torch", "blockzoo", "torch"))
    return [
        _record(
            "callgrind/import/blockzoo vs torch", ours, torch_first, target="<= 1.02", noise=torch_second / torch_first
        )
    ]


def cases(settings: Settings) -> list[Case]:
    if not settings.callgrind:
        return []
    from benchmarks.bench_blocks import COMPILED, blocks

    out = [Case("callgrind/import", measure_import), Case("callgrind/A-A", measure_aa)]
    for b in blocks():
        if b.refs:
            refs = tuple(b.refs)
            out.append(Case(f"callgrind/blocks/{b.name}", lambda name=b.name, refs=refs: measure_block(name, refs)))
    out += [Case(f"callgrind/blocks-compiled/{name}", lambda name=name: measure_compiled(name)) for name in COMPILED]
    return out
