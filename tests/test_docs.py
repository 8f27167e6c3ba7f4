"""The docs cannot drift: generated tables list the registries, every public name has a page and an example."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import typing
from pathlib import Path
from types import ModuleType

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load(name: str) -> ModuleType:
    """Import a module of docs/_ext by file (docs/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


docs_ext = _load("blockzoo_docs")
check_links = _load("check_links")


def _table_rows(path: Path) -> list[list[str]]:
    """The body rows of a reStructuredText simple table, cells stripped of ``code`` marks."""
    lines = path.read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=")]
    assert len(rules) == 3, f"{path.name} is not a simple table with a header"
    spans = [m.span() for m in re.finditer(r"=+", lines[rules[0]])]
    spans[-1] = (spans[-1][0], None)  # the last column runs to the end of the line
    return [[line[a:b].strip().strip("`") for a, b in spans] for line in lines[rules[1] + 1 : rules[2]]]


# ----------------------------------------------------------------------------- registry tables


def _expected_layers() -> list[list[str]]:
    from blockzoo.layers import LayerKind, list_layers

    return [[kind, name] for kind in typing.get_args(LayerKind) for name in list_layers(kind)]


def _names(list_fn: str) -> typing.Callable[[], list[list[str]]]:
    module, _, fn = list_fn.rpartition(".")
    return lambda: [[name] for name in getattr(importlib.import_module(module), fn)()]


# The registry each generated table must list, read through the public list_* calls.
EXPECTED = {
    "layers": _expected_layers,
    "initializers": _names("blockzoo.init.list_initializers"),
    "optimizers": _names("blockzoo.optim.list_optimizers"),
    "schedulers": _names("blockzoo.optim.list_schedulers"),
    "datasets": _names("blockzoo.data.list_datasets"),
    "metrics": _names("blockzoo.train.list_metrics"),
    "models": _names("blockzoo.models.list_models"),
}


def test_every_registry_has_a_table() -> None:
    assert set(docs_ext.REGISTRY_TABLES) == set(EXPECTED)


@pytest.mark.parametrize("registry", sorted(EXPECTED))
def test_registry_table_lists_exactly_the_registry(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if registry == "models":
        # Counting every model's parameters takes seconds; the rows' names are what is checked.
        import blockzoo.models

        info = blockzoo.models.ModelInfo
        monkeypatch.setattr(blockzoo.models, "model_info", lambda name: info(name, "f", "p", (1, 2, 2), 1))
    table = docs_ext.REGISTRY_TABLES[registry]
    path = tmp_path / table.filename
    path.write_text("\n".join(docs_ext.rst_table(table.header, table.rows())) + "\n")
    expected = EXPECTED[registry]()
    rows = _table_rows(path)
    assert [row[: len(expected[0])] for row in rows] == expected
    assert all(all(cell for cell in row[: len(table.header) - 1]) for row in rows), "an empty cell"


@pytest.mark.parametrize("table", sorted(t.filename for t in docs_ext.REGISTRY_TABLES.values()))
def test_registry_table_is_on_a_page(table: str) -> None:
    pages = "".join(p.read_text() for p in DOCS.rglob("*.rst") if "generated" not in p.parts)
    assert f".. include:: generated/tables/{table}" in pages


def test_table_parser_reads_the_last_column_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.rst"
    path.write_text("\n".join(docs_ext.rst_table(("a", "b"), [("``x``", "a longer cell than the rule")])))
    assert _table_rows(path) == [["x", "a longer cell than the rule"]]


# ----------------------------------------------------------------------------- API page


def _api_entries() -> list[str]:
    """Dotted names the API page documents: its autosummary entries and automodule targets."""
    entries, module, in_summary = [], "", False
    for line in (DOCS / "api.rst").read_text().splitlines():
        if line.startswith(".. currentmodule::"):
            module = line.split("::")[1].strip()
        elif line.startswith(".. automodule::"):
            entries.append(line.split("::")[1].strip())
        elif line.startswith(".. autosummary::"):
            in_summary = True
        elif in_summary and line.startswith("   ") and not line.strip().startswith(":"):
            entries.append(f"{module}.{line.strip()}")
        elif in_summary and line and not line.startswith(" "):
            in_summary = False
    return entries


def test_every_public_name_has_one_page_on_the_api_page() -> None:
    entries = _api_entries()
    duplicates = sorted({e for e in entries if entries.count(e) > 1})
    assert not duplicates, f"documented twice: {duplicates}"
    canonical = set(docs_ext.canonical_names().values()) | set(docs_ext.PUBLIC_MODULES)
    assert sorted(canonical - set(entries)) == [], "public names without a page"
    assert sorted(set(entries) - canonical) == [], "pages for names that are not public"


def test_every_public_module_is_a_section_of_the_api_page() -> None:
    automodules = [e for e in _api_entries() if e in docs_ext.PUBLIC_MODULES]
    assert sorted(automodules) == sorted(docs_ext.PUBLIC_MODULES)


def test_only_the_api_page_generates_pages() -> None:
    # A second ``:toctree:`` would document an object twice, under two names.
    pages = [p for p in DOCS.rglob("*.rst") if "generated" not in p.parts and p.name != "api.rst"]
    assert [p.name for p in pages if ":toctree:" in p.read_text()] == []


def test_reexports_resolve_to_their_defining_module() -> None:
    import blockzoo

    canonical = docs_ext.canonical_names()
    assert canonical["blockzoo.create_model"] == "blockzoo.models.create_model"
    assert canonical["blockzoo.ModelSummary"] == "blockzoo.inspect.ModelSummary"
    assert canonical["blockzoo.init.init_weights"] == "blockzoo.init.init_weights"
    assert canonical["blockzoo.data"] == "blockzoo.data"
    for name in blockzoo.__all__:
        target = canonical[f"blockzoo.{name}"]
        module, _, attr = target.rpartition(".")
        found = importlib.import_module(target) if inspect.ismodule(getattr(blockzoo, name)) else None
        found = found or getattr(importlib.import_module(module), attr)
        assert found is getattr(blockzoo, name), name


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("blockzoo.ModelSummary.to_markdown", "blockzoo.inspect.ModelSummary.to_markdown"),
        ("Trainer.train_step", "blockzoo.train.Trainer.train_step"),
        ("blockzoo.models.create_model", None),  # already canonical
        ("remove", None),  # no public name of that name
    ],
)
def test_canonical_target(target: str, expected: str | None) -> None:
    aliases = docs_ext.canonical_names()
    assert docs_ext.canonical_target(target, aliases, docs_ext._short_names(aliases)) == expected


# ----------------------------------------------------------------------------- examples

_EXAMPLE = re.compile(r"^Examples?:\n(?:(?:[ \t].*)?\n)*?[ \t]+>>> ", re.MULTILINE)


def _documented_objects() -> list[str]:
    """Canonical names of the public classes and functions (type aliases and constants have no docstring)."""
    names = []
    for name in sorted(set(docs_ext.canonical_names().values())):
        module, _, attr = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attr, None) if module else None
        if inspect.isclass(obj) or inspect.isroutine(obj):
            names.append(name)
    return names


@pytest.mark.parametrize("name", _documented_objects())
def test_public_object_has_a_runnable_example(name: str) -> None:
    module, _, attr = name.rpartition(".")
    obj = getattr(importlib.import_module(module), attr)
    doc = inspect.cleandoc(obj.__doc__ or "") + "\n"  # its own docstring, not an inherited one
    assert _EXAMPLE.search(doc), f"{name}'s docstring has no Example: section with a >>> line"


def test_example_pattern() -> None:
    assert _EXAMPLE.search("Summary.\n\nExample:\n    >>> 1 + 1\n    2\n")
    assert _EXAMPLE.search("Summary.\n\nExamples:\n\n    Some words.\n    >>> x = 1\n")
    assert not _EXAMPLE.search("Summary.\n\n    >>> 1 + 1\n    2\n")
    assert not _EXAMPLE.search("Example:\n    A sentence only.\n\nArgs:\n    >>> not an example\n")


# ----------------------------------------------------------------------------- link checker


def _site(root: Path, pages: dict[str, str]) -> Path:
    for name, body in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"<html><body>{body}</body></html>")
    return root


def test_link_checker_accepts_links_that_resolve(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        {
            "index.html": '<a href="api/page.html#sec">x</a><a href="#top">t</a><p id="top"></p>'
            '<a href="https://example.org/missing.html">e</a><a href="mailto:a@b.c">m</a><a href="api/">d</a>',
            "api/page.html": '<h2 id="sec">s</h2><img src="../_static/logo.png"><a href="../index.html">up</a>',
            "api/index.html": "",
            "_static/logo.png": "",
        },
    )
    assert check_links.broken_links(site) == []
    assert check_links.main([str(site)]) == 0


def test_link_checker_reports_missing_files_and_anchors(tmp_path: Path) -> None:
    site = _site(
        tmp_path / "html",
        {
            "index.html": '<a href="gone.html">g</a><a href="other.html#nowhere">n</a>'
            '<a href="#%C3%A9t%C3%A9">ok</a><span id="été"></span><a href="../../etc/passwd">o</a>',
            "other.html": '<a name="old"></a><script src="_static/missing.js"></script>',
        },
    )
    assert check_links.broken_links(site) == [
        "index.html: gone.html (no such file)",
        "index.html: other.html#nowhere (no such anchor)",
        "index.html: ../../etc/passwd (outside the site)",
        "other.html: _static/missing.js (no such file)",
    ]
    assert check_links.main([str(site)]) == 1


def test_link_checker_usage(tmp_path: Path) -> None:
    assert check_links.main([str(tmp_path / "absent")]) == 2
