"""The ``cuda`` marker's rules: every test that uses CUDA carries it, and without a GPU it skips.

Two detectors, used by ``conftest.py`` and checked by ``test_markers.py``:

* :func:`unmarked_cuda_items`, on pytest's collected items: a test whose
  parameters hold a CUDA device (``"cuda"``, ``"cuda:1"``, ``torch.device("cuda")``)
  must carry the marker, on the test or on that parameter. It sees
  parametrisations that come from anywhere (``support.DEVICES``, fixtures' params).
* :func:`unmarked_cuda_tests`, on the source of a test module: a test whose
  body, parametrisation, same-module helpers or same-module fixtures name CUDA
  (a ``"cuda"`` device string, ``.cuda()``, ``torch.cuda.*`` other than the
  availability checks, blockzoo.testing's ``devices()`` strategy) must carry the
  marker. It sees what the parameters do not: a device written in the body.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any, NamedTuple

import pytest
import torch

#: torch.cuda calls that only ask whether CUDA is there, as a skip condition does.
AVAILABILITY = {"torch.cuda.is_available", "torch.cuda.device_count"}
#: Methods whose string argument is a marker's name, not a device.
MARKER_LOOKUPS = {"get_closest_marker", "iter_markers"}
#: Names that draw or return CUDA devices when a GPU is present.
CUDA_SOURCES = {"blockzoo.testing.devices", "blockzoo.testing._strategies.devices"}


def is_cuda_value(value: object) -> bool:
    """A CUDA device, as a string or a ``torch.device``."""
    if isinstance(value, torch.device):
        return value.type == "cuda"
    return isinstance(value, str) and (value == "cuda" or value.startswith("cuda:"))


def unmarked_cuda_items(items: Iterable[Any]) -> list[str]:
    """Node ids of collected tests with a CUDA device among their parameters and no ``cuda`` marker."""
    bad = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if any(is_cuda_value(v) for v in params) and item.get_closest_marker("cuda") is None:
            bad.append(item.nodeid)
    return bad


def skip_cuda_items_without_gpu(items: Iterable[Any], available: bool) -> None:
    """Mark every ``cuda`` test skipped when no GPU is there, so that a CPU run never errors on one."""
    if available:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked cuda)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


class Unmarked(NamedTuple):
    path: str
    line: int
    test: str
    use: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.test} uses CUDA ({self.use}) without @pytest.mark.cuda"


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _is_cuda_mark(node: ast.AST, aliases: dict[str, str], mark_names: set[str]) -> bool:
    """``pytest.mark.cuda`` (called or not), or a module name bound to an expression holding it."""
    target = node.func if isinstance(node, ast.Call) else node
    name = _dotted(target, aliases) or ""
    return name.endswith("mark.cuda") or name in mark_names


def _holds_cuda_mark(node: ast.AST, aliases: dict[str, str], mark_names: set[str]) -> bool:
    return any(_is_cuda_mark(sub, aliases, mark_names) for sub in ast.walk(node))


class Names(NamedTuple):
    """What a module's names mean: import aliases, names bound to the cuda mark, names bound to CUDA devices."""

    aliases: dict[str, str]
    marks: set[str]
    devices: set[str]


def _uses(node: ast.AST, names: Names) -> list[tuple[int, str]]:
    """CUDA uses under ``node``, leaving out ``pytest.param(..., marks=[... cuda ...])``, skip conditions and
    marker names (``item.get_closest_marker("cuda")``)."""
    aliases, mark_names = names.aliases, names.marks
    if isinstance(node, ast.Call):
        func = _dotted(node.func, aliases) or ""
        if func.endswith("param") and any(
            k.arg == "marks" and _holds_cuda_mark(k.value, aliases, mark_names) for k in node.keywords
        ):
            return []  # this parameter is marked on its own
        if func.endswith(("mark.skipif", "mark.skip")):
            return []
        if isinstance(node.func, ast.Attribute) and node.func.attr in MARKER_LOOKUPS:
            return _uses(node.func.value, names)
    found: list[tuple[int, str]] = []
    if isinstance(node, ast.Constant) and is_cuda_value(node.value):
        found.append((node.lineno, repr(node.value)))
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "cuda":
        found.append((node.lineno, ".cuda()"))
    elif isinstance(node, ast.Attribute | ast.Name):
        name = _dotted(node, aliases) or ""
        if (name.startswith("torch.cuda.") and name not in AVAILABILITY) or name in CUDA_SOURCES:
            found.append((node.lineno, name))
        elif isinstance(node, ast.Name) and node.id in names.devices:
            found.append((node.lineno, node.id))
        if isinstance(node, ast.Attribute):
            return found  # the chain is judged whole: torch.cuda.is_available is not torch.cuda
    for child in ast.iter_child_nodes(node):
        found += _uses(child, names)
    return found


def _aliases(tree: ast.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]  # ``import torch.cuda`` binds ``torch``
                aliases[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def unmarked_cuda_tests(source: str, path: str) -> list[Unmarked]:
    """Tests in ``source`` that use CUDA (themselves, through a same-module helper or fixture) unmarked."""
    tree = ast.parse(source, filename=path)
    names = Names(_aliases(tree), set(), set())
    module_marked = False
    for statement in tree.body:  # module-level names: the mark under another name, or a CUDA device
        if not isinstance(statement, ast.Assign | ast.AnnAssign) or statement.value is None:
            continue
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        bound = {t.id for t in targets if isinstance(t, ast.Name)}
        if _holds_cuda_mark(statement.value, names.aliases, set()):
            module_marked |= "pytestmark" in bound
            names.marks.update(bound - {"pytestmark"})
        elif _uses(statement.value, names):
            names.devices.update(bound)
    aliases, mark_names = names.aliases, names.marks
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    # a helper or fixture uses CUDA when its body does, or when it calls or requests one that does
    direct = {name: _uses(f, names) for name, f in functions.items()}
    using = {name for name, uses in direct.items() if uses}
    changed = True
    while changed:
        changed = False
        for name, function in functions.items():
            called = {n.func.id for n in ast.walk(function) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
            requested = {a.arg for a in function.args.args}
            if name not in using and (called | requested) & using:
                using.add(name)
                changed = True
    tests: list[tuple[ast.FunctionDef, bool]] = [(f, False) for f in functions.values()]
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            marked = any(_is_cuda_mark(d, aliases, mark_names) for d in node.decorator_list)
            tests += [(f, marked) for f in node.body if isinstance(f, ast.FunctionDef)]
    found = []
    for function, class_marked in tests:
        if not function.name.startswith("test"):
            continue
        if module_marked or class_marked or any(_is_cuda_mark(d, aliases, mark_names) for d in function.decorator_list):
            continue
        uses = _uses(function, names)
        helpers = sorted(
            ({n.func.id for n in ast.walk(function) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
             | {a.arg for a in function.args.args})
            & (using - {function.name})
        )  # fmt: skip
        uses += [(function.lineno, f"through {h}()") for h in helpers]
        if uses:
            line, use = min(uses)
            found.append(Unmarked(path, line, function.name, use))
    return found
