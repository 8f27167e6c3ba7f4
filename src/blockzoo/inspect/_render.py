"""How a ModelSummary reads: a text table that fits the terminal, markdown, and records."""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from blockzoo._names import close_matches, format_choices
from blockzoo.errors import UnknownNameError

if TYPE_CHECKING:
    from blockzoo.inspect._report import ModelSummary, SummaryRow

__all__ = ["COLUMNS", "check_columns", "format_shape", "markdown", "records", "text"]


def si(n: int) -> str:
    """``27.6 K`` for 27648: three significant digits and a decimal prefix."""
    rounded = float(f"{n:.3g}")  # round first: 999,500 is 1.00 M, not 1e+03 K
    for factor, prefix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")):
        if abs(rounded) >= factor:
            return f"{rounded / factor:.3g} {prefix}"
    return str(n)


def size(n: int) -> str:
    """``5.9 KiB`` for 6088 bytes."""
    for factor, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


def format_shape(shape: Any) -> str:
    """``[2, 10]`` for a shape; ``{logits: [2, 10], aux: [2, 5]}`` and ``([2, 10], [2])`` for structures of them.

    Example:
        >>> from blockzoo.inspect._render import format_shape
        >>> format_shape({"logits": (2, 10), "aux": ((2, 5), None)})
        '{logits: [2, 10], aux: ([2, 5], None)}'
    """
    if type(shape) is tuple and all(isinstance(s, int) for s in shape):
        return "[" + ", ".join(str(s) for s in shape) + "]"
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {format_shape(v)}" for k, v in shape.items()) + "}"
    if isinstance(shape, (tuple, list)):
        inner = ", ".join(format_shape(s) for s in shape)
        return f"({inner})" if isinstance(shape, tuple) else f"[{inner}]"
    return repr(shape)


def _name(row: SummaryRow) -> str:
    return "  " * (row.depth - 1) + (row.name.rsplit(".", 1)[-1] if row.name else "(model)")


def _shape(row: SummaryRow) -> str:
    if row.output_shape is None:
        return "-"
    return format_shape(row.output_shape) + (f" x{row.calls}" if row.calls > 1 else "")


def _params(row: SummaryRow) -> str:
    if row.shared_with is not None:
        return f"= {row.shared_with}"
    return f"{row.params:,}" + (f" +{row.tied:,} tied" if row.tied else "")


def _optimizer(row: SummaryRow) -> str:
    if len(row.optimizer_groups) == 1:
        cell = f"{row.optimizer_groups[0]} (lr {row.lr[0]:g}, wd {row.weight_decay[0]:g})"
    else:
        cell = ", ".join(str(g) for g in row.optimizer_groups)
    return f"{cell}, not in it" if row.unoptimized and cell else ("not in it" if row.unoptimized else cell)


def _init(row: SummaryRow, short: bool) -> str:
    labels = [label.split("(", 1)[0] if short else label for label in row.init]
    return ", ".join(dict.fromkeys(labels)) + ("*" if row.init_changed else "")


@dataclass(frozen=True)
class _Column:
    title: str
    cell: Callable[[SummaryRow, bool], str]  # (row, short) -> text
    right: bool = False


COLUMNS: dict[str, _Column] = {
    "name": _Column("name", lambda r, short: _name(r) if short else (r.name or "(model)")),
    "type": _Column("type", lambda r, short: r.type),
    "output_shape": _Column("output shape", lambda r, short: _shape(r)),
    "params": _Column("params", lambda r, short: _params(r), right=True),
    "frozen": _Column("frozen", lambda r, short: f"{r.frozen:,}", right=True),
    "flops": _Column("FLOPs", lambda r, short: "-" if r.flops is None else si(r.flops), right=True),
    "roles": _Column("roles", lambda r, short: ", ".join(r.roles)),
    "init": _Column("init", _init),
    "regularizers": _Column("regularizers", lambda r, short: ", ".join(r.regularizers)),
    "optimizer": _Column("optimizer group", lambda r, short: _optimizer(r)),
    "mode": _Column("mode", lambda r, short: "train" if r.training else "eval"),
    "memory_format": _Column("weights format", lambda r, short: r.memory_format or ""),
}

#: The default columns that the text table leaves out first when it is too wide.
_DROP_ORDER = ("memory_format", "mode", "roles", "flops", "init", "frozen", "regularizers", "optimizer")
_SHRINKABLE = ("init", "regularizers", "optimizer", "roles", "type")


def check_columns(columns: Any) -> tuple[str, ...]:
    """``columns`` as a tuple, each a key of :data:`COLUMNS`; unknown names raise with close matches."""
    if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise TypeError(
            f"columns must be a non-empty list of column names such as ['name', 'params']. Received: columns={columns!r}"
        )
    for column in columns:
        if column not in COLUMNS:
            hint = close_matches(str(column), COLUMNS)
            did_you_mean = f" Did you mean {format_choices(hint)}?" if hint else ""
            raise UnknownNameError(
                f"Unknown column {column!r}.{did_you_mean} The columns are {format_choices(COLUMNS)}. "
                f"Received: columns={list(columns)!r}"
            )
    return tuple(columns)


def _default_columns(s: ModelSummary) -> list[str]:
    rows = s.rows
    has = {
        "output_shape": s.input_shape is not None,
        "frozen": s.frozen_params > 0,
        "flops": s.flops is not None,
        "roles": any(r.roles for r in rows),
        "init": any(r.init for r in rows),
        "regularizers": any(r.regularizers for r in rows),
        "optimizer": s.optimizer is not None,
        "mode": any(r.training != s.training for r in rows),
        "memory_format": any(r.memory_format not in (None, "contiguous") for r in rows),
    }
    return [key for key in COLUMNS if has.get(key, True)]


def _cells(s: ModelSummary, keys: Sequence[str], short: bool) -> list[list[str]]:
    return [[COLUMNS[k].title for k in keys]] + [[COLUMNS[k].cell(r, short) for k in keys] for r in s.rows]


def _widths(table: list[list[str]]) -> list[int]:
    return [max(len(row[i]) for row in table) for i in range(len(table[0]))]


def _fit(table: list[list[str]], keys: list[str], width: int, *, floor: int) -> tuple[list[int], bool]:
    """Column widths within ``width``, cutting the widest shrinkable column first, none below ``floor``; and if it fits."""
    widths = _widths(table)
    while (excess := sum(widths) + 2 * (len(widths) - 1) - width) > 0:
        candidates = [i for i, k in enumerate(keys) if k in _SHRINKABLE and widths[i] > floor]
        if not candidates:
            return widths, False
        i = max(candidates, key=lambda j: widths[j])
        widths[i] = max(floor, widths[i] - excess)
    return widths, True


def _line(cells: Sequence[str], widths: Sequence[int], keys: Sequence[str]) -> str:
    out = []
    for cell, w, key in zip(cells, widths, keys, strict=True):
        cell = cell if len(cell) <= w else cell[: w - 3] + "..."
        out.append(cell.rjust(w) if COLUMNS[key].right else cell.ljust(w))
    return "  ".join(out).rstrip()


def _headline(s: ModelSummary) -> list[str]:
    mode = "train" if s.training else "eval"
    if s.input_shape is None:
        return [f"{s.model}: no input given (input_size= or input_data= adds shapes and FLOPs), in {mode} mode"]
    lines = [f"{s.model}: input {format_shape(s.input_shape)} -> output {format_shape(s.output_shape)}, in {mode} mode"]
    if s.pass_device != "meta":
        lines.append(f"(shapes from a pass on {s.pass_device}; the meta device could not run it: {s.meta_failure})")
    return lines


def _totals(s: ModelSummary) -> list[tuple[str, str]]:
    shared = f"; {s.shared_tensors} tensors with several names, counted once" if s.shared_tensors else ""
    lines = [
        ("parameters", f"{s.total_params:,} (trainable {s.trainable_params:,}, frozen {s.frozen_params:,}){shared}"),
        ("memory", f"{size(s.param_bytes)} of parameters, {size(s.buffer_bytes)} of buffers"),
    ]
    if s.activation_bytes is not None:
        lines.append(
            ("activations", f"{size(s.activation_bytes)} for a training step (saved for backward, and the output)")
        )
    if s.flops is not None and s.macs is not None:
        lines.append(("FLOPs", f"{si(s.flops)} (FlopCounterMode: 2 per multiply-accumulate), {si(s.macs)} MACs"))
    if s.optimizer is not None:
        groups = "; ".join(
            f"group {i} lr {g['lr']:g} wd {g['weight_decay']:g}"
            + (f" ({g['rule']})" if g["rule"] != "(not built by blockzoo)" else "")
            for i, g in enumerate(s.groups)
        )
        lines.append(("optimizer", f"{s.optimizer}: {groups}"))
    if s.unoptimized:
        more = f" and {len(s.unoptimized) - 3} more" if len(s.unoptimized) > 3 else ""
        lines.append(("not optimized", f"trainable, in no optimizer group: {', '.join(s.unoptimized[:3])}{more}"))
    if s.model_attachments:
        lines.append(("attached", ", ".join(s.model_attachments) + " (to the model as a whole)"))
    return lines


def _notes(s: ModelSummary, keys: Sequence[str]) -> list[str]:
    notes = []
    if "params" in keys and any(r.shared_with or r.tied for r in s.rows):
        notes.append(
            "Each parameter is counted once, at its first name: '= NAME' is a module used again, "
            "'+N tied' elements counted under another name."
        )
    if "output_shape" in keys and s.input_shape is not None and any(r.output_shape is None for r in s.rows):
        notes.append("Output shape '-': the module did not run.")
    if "init" in keys and any(r.init_changed for r in s.rows):
        notes.append("init*: the values changed since (trained or loaded).")
    return notes


def text(s: ModelSummary, width: int | None) -> str:
    """The text rendering, at most ``width`` characters wide (the terminal's width when ``None``)."""
    width = shutil.get_terminal_size().columns if width is None else width
    keys = list(s.columns) if s.columns is not None else _default_columns(s)
    dropped = []
    table = _cells(s, keys, short=True)
    # Long cells are cut to 20 characters before a column goes; columns asked for all stay.
    widths, fits = _fit(table, keys, width, floor=20)
    while not fits and s.columns is None and any(k in keys for k in _DROP_ORDER):
        dropped.append(next(k for k in _DROP_ORDER if k in keys))
        keys.remove(dropped[-1])
        table = _cells(s, keys, short=True)
        widths, fits = _fit(table, keys, width, floor=20)
    if not fits:
        widths, _ = _fit(table, keys, width, floor=8)
    body = [_line(row, widths, keys) for row in table]
    rule = "-" * min(width, max(len(line) for line in body))
    totals = _totals(s)
    label = max(len(k) for k, _ in totals) + 2
    wrap = textwrap.TextWrapper(width=max(width, label + 20), subsequent_indent=" " * label)
    foot = [wrap.fill(k.ljust(label) + v) for k, v in totals]
    notes = _notes(s, keys)
    if dropped:
        notes.append(f"Left out to fit {width} characters: {', '.join(dropped)} (columns= picks the columns).")
    foot += [textwrap.fill(n, width=max(width, 40)) for n in notes]
    return "\n".join([*_headline(s), body[0], rule, *body[1:], rule, *foot])


def markdown(s: ModelSummary) -> str:
    """A markdown table with every chosen column and full names, then the totals as a list."""
    keys = list(s.columns) if s.columns is not None else _default_columns(s)
    table = _cells(s, keys, short=False)

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---:" if COLUMNS[k].right else "---" for k in keys]
    lines = [*_headline(s), "", row(table[0]), "| " + " | ".join(align) + " |", *(row(r) for r in table[1:]), ""]
    lines += [f"- **{k}**: {v}" for k, v in _totals(s)]
    lines += [f"- {n}" for n in _notes(s, keys)]
    return "\n".join(lines)


def records(s: ModelSummary) -> list[dict[str, Any]]:
    """One dict per row with every field of the row."""
    return [dataclasses.asdict(r) for r in s.rows]
