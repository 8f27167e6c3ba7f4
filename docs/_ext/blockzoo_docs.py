"""What blockzoo's docs build generates, and how it resolves re-exported names.

* The registry tables (``docs/generated/tables/*.rst``), written from the
  registries each time the docs build, so that they list exactly what the
  registries hold. One :class:`Table` per registry, one writer for all.
* The table of top-level re-exports on the API page, each row linking to the
  name's canonical page.
* A ``missing-reference`` handler that sends a reference to a re-exported name
  (``blockzoo.create_model``, ``blockzoo.inspect.fuse_conv_bn``) to the one page
  that documents the object (``blockzoo.models.create_model``).

``tests/test_docs.py`` imports this module to check the tables and the API page.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Every public module whose ``__all__`` the API reference documents, in the
#: order of the floors (a name defined on a lower floor is canonical there).
PUBLIC_MODULES = (
    "blockzoo.errors",
    "blockzoo.roles",
    "blockzoo.shapes",
    "blockzoo.layers",
    "blockzoo.init",
    "blockzoo.blocks",
    "blockzoo.regularization",
    "blockzoo.optim",
    "blockzoo.models",
    "blockzoo.inspect",
    "blockzoo.data",
    "blockzoo.train",
    "blockzoo.testing",
    "blockzoo.cli",
    "blockzoo",
)

GENERATED = Path(__file__).resolve().parent.parent / "generated" / "tables"


# ----------------------------------------------------------------------------- canonical names


def _public_names() -> Iterator[tuple[str, str, object]]:
    """``(module, name, object)`` for every name in every public ``__all__``."""
    for modname in PUBLIC_MODULES:
        module = importlib.import_module(modname)
        for name in module.__all__:
            yield modname, name, getattr(module, name)


def _home(modname: str, obj: object) -> int:
    """0 when ``modname`` or one of its private modules defines ``obj``, else 1."""
    defined_in = getattr(obj, "__module__", None) or ""
    return 0 if defined_in == modname or defined_in.startswith(modname + "._") else 1


def canonical_names() -> dict[str, str]:
    """Every public dotted name -> the dotted name of the page that documents its object.

    A name's canonical page is in the public module whose private modules
    define it (``blockzoo.blocks`` for ``blockzoo.blocks._conv.ConvBlock``);
    failing that, in the lowest public module that exports it. Submodules
    listed in ``blockzoo.__all__`` map to themselves. Objects compare by
    identity, except names of plain values (type aliases, constants), which
    are canonical where they are exported.
    """
    places: dict[int, list[tuple[int, int, str]]] = {}
    value_names: dict[str, str] = {}
    for order, (modname, name, obj) in enumerate(_public_names()):
        full = f"{modname}.{name}"
        if inspect.ismodule(obj):
            value_names[full] = obj.__name__
        elif inspect.isclass(obj) or inspect.isroutine(obj):
            places.setdefault(id(obj), []).append((_home(modname, obj), order, full))
        else:
            value_names[full] = full
    result = dict(value_names)
    for candidates in places.values():
        best = min(candidates)[2]
        for *_, full in candidates:
            result[full] = best
    return result


def _short_names(aliases: dict[str, str]) -> dict[str, str]:
    """Short name -> canonical name, for the short names that only one object has."""
    found: dict[str, set[str]] = {}
    for full, canonical in aliases.items():
        found.setdefault(full.rsplit(".", 1)[-1], set()).add(canonical)
    return {short: next(iter(c)) for short, c in found.items() if len(c) == 1}


def canonical_target(target: str, aliases: dict[str, str], short: dict[str, str]) -> str | None:
    """Rewrite a reference target that goes through a re-export (or a unique short name).

    ``blockzoo.ModelSummary.to_markdown`` becomes
    ``blockzoo.inspect.ModelSummary.to_markdown``; ``Trainer.train_step``, read
    in a summary table outside ``blockzoo.train``, becomes
    ``blockzoo.train.Trainer.train_step``. Returns ``None`` when nothing applies.
    """
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        base = aliases.get(head) or (short.get(head) if i == 1 else None)
        if base is not None:
            rewritten = ".".join([base, *parts[i:]])
            return rewritten if rewritten != target else None
    return None


def _resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a Python reference that Sphinx could not, through its canonical name."""
    if node.get("refdomain") != "py":
        return None
    aliases, short = env.blockzoo_canonical
    target = canonical_target(node["reftarget"], aliases, short)
    if target is None:
        return None
    domain = env.get_domain("py")
    for reftype in dict.fromkeys((node["reftype"], "obj")):
        resolved = domain.resolve_xref(env, node["refdoc"], app.builder, reftype, target, node, contnode)
        if resolved is not None:
            return resolved
    return None


# ----------------------------------------------------------------------------- tables


def rst_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """A reStructuredText simple table."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), rule, *body, rule]


def _public_path(obj: object) -> str | None:
    """The shortest public dotted path under which ``obj``'s module exports it, if any."""
    qualname = getattr(obj, "__qualname__", type(obj).__qualname__)
    parts = (getattr(obj, "__module__", None) or "").split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if getattr(sys.modules.get(prefix), qualname, None) is obj:
            return f"{prefix}.{qualname}"
    return None


def _code(text: object) -> str:
    return f"``{text}``"


def _code_path(obj: object) -> str:
    """``obj``'s public path as code, or a note that it is a private helper of blockzoo."""
    path = _public_path(obj)
    return _code(path) if path else "(a private function of blockzoo)"


@dataclass(frozen=True)
class Table:
    """A generated table: its file name, the page that includes it, header and rows.

    ``rows`` returns the rows; the first column of each row is the registered
    name as ``tests/test_docs.py`` reads it back.
    """

    filename: str
    header: tuple[str, ...]
    rows: Callable[[], list[tuple[str, ...]]]


# Arguments that build one example layer of each kind (meta device: nothing is allocated).
_LAYER_EXAMPLE_ARGS: dict[str, tuple[Any, ...]] = {
    "act": (),
    "norm": (8,),
    "pool": (),
    "dropout": (0.1,),
    "conv": (4, 8, 3),
}


def _layer_rows() -> list[tuple[str, ...]]:
    from blockzoo.layers import LayerKind, build_layer, list_layers

    rows = []
    for kind in typing.get_args(LayerKind):
        for name in list_layers(kind):
            placement = {"device": "meta"} if kind in ("norm", "conv") else {}
            layer = build_layer(kind, name, *_LAYER_EXAMPLE_ARGS[kind], **placement)
            rows.append((_code(kind), _code(name), _code_path(type(layer))))
    return rows


def _initializer_rows() -> list[tuple[str, ...]]:
    from blockzoo.init import get_initializer, list_initializers

    rows = []
    for name in list_initializers():
        spec = get_initializer(name)
        rows.append((_code(name), _code_path(spec.fn), "yes" if spec.random else "no"))
    return rows


def _activation_rows() -> list[tuple[str, ...]]:
    from blockzoo.init import activation_table

    return [(label, _code(init)) for label, init in activation_table()]


def _optimizer_rows() -> list[tuple[str, ...]]:
    from blockzoo.optim import get_optimizer_spec, list_optimizers

    rows = []
    for name in list_optimizers():
        spec = get_optimizer_spec(name)
        impl = ", ".join(k for k, has in (("fused", spec.has_fused), ("foreach", spec.has_foreach)) if has)
        rows.append((_code(name), _code_path(spec.cls), impl or "for-loop", spec.description))
    return rows


def _scheduler_rows() -> list[tuple[str, ...]]:
    from blockzoo.optim import list_schedulers
    from blockzoo.optim._schedulers import _SCHEDULERS

    return [(_code(name), _code_path(_SCHEDULERS.get(name)[0])) for name in list_schedulers()]


def _dataset_rows() -> list[tuple[str, ...]]:
    from blockzoo.data import dataset_info, list_datasets

    rows = []
    for name in list_datasets():
        info = dataset_info(name)
        size = f"{info.in_channels}x{info.image_size}x{info.image_size}"
        rows.append((_code(name), str(info.num_classes), size, "yes" if info.augment else "no"))
    return rows


def _metric_rows() -> list[tuple[str, ...]]:
    from blockzoo.train import list_metrics

    meaning = {
        "accuracy": "fraction of samples whose highest output is the true class",
        "top5_accuracy": "fraction of samples whose true class is among the five highest outputs",
    }
    return [(_code(name), meaning.get(name, "")) for name in list_metrics()]


def _model_rows() -> list[tuple[str, ...]]:
    from blockzoo.models import list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        size = "x".join(str(s) for s in info.input_size)
        rows.append((_code(name), info.family, f"{info.num_params / 1e6:.2f}M", size, info.paper))
    return rows


def _reexport_rows() -> list[tuple[str, ...]]:
    import blockzoo

    canonical = canonical_names()
    rows = []
    for name in sorted(blockzoo.__all__, key=str.lower):
        target = canonical[f"blockzoo.{name}"]
        if target == f"blockzoo.{name}":
            continue  # documented on the API page under its own name
        rows.append((_code(f"blockzoo.{name}"), f":py:obj:`{target}`"))
    return rows


#: The registry tables, by the registry they list.
REGISTRY_TABLES: dict[str, Table] = {
    "layers": Table("layer_table.rst", ("kind", "name", "builds (``spatial_dims=2``)"), _layer_rows),
    "initializers": Table("initializer_table.rst", ("name", "function", "random"), _initializer_rows),
    "optimizers": Table("optimizer_table.rst", ("name", "class", "implementations", "description"), _optimizer_rows),
    "schedulers": Table("scheduler_table.rst", ("name", "class"), _scheduler_rows),
    "datasets": Table("dataset_table.rst", ("name", "classes", "image (CxHxW)", "augmented"), _dataset_rows),
    "metrics": Table("metric_table.rst", ("name", "what it measures"), _metric_rows),
    "models": Table("model_table.rst", ("name", "family", "parameters", "input", "paper"), _model_rows),
}

#: Other generated tables.
OTHER_TABLES: dict[str, Table] = {
    "activations": Table("init_table.rst", ("activation after the layer", "default initializer"), _activation_rows),
    "reexports": Table("reexport_table.rst", ("name", "documented as"), _reexport_rows),
}


def write_tables(outdir: Path = GENERATED) -> list[Path]:
    """Write every generated table into ``outdir``; returns the paths written."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in [*REGISTRY_TABLES.values(), *OTHER_TABLES.values()]:
        path = outdir / table.filename
        text = "\n".join(rst_table(table.header, table.rows())) + "\n"
        if not path.exists() or path.read_text() != text:  # unchanged files keep Sphinx's cache valid
            path.write_text(text)
        written.append(path)
    return written


def _on_builder_inited(app: Any) -> None:
    write_tables()
    aliases = canonical_names()
    app.env.blockzoo_canonical = (aliases, _short_names(aliases))


def setup(app: Any) -> dict[str, Any]:
    """Register the table writer and the re-export resolver with Sphinx."""
    app.connect("builder-inited", _on_builder_inited)
    app.connect("missing-reference", _resolve_reexport)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
