"""``init_report``: what initialised each parameter, what std it promised, and what it has now."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from blockzoo._checks import check_module
from blockzoo._layer_kinds import NORM_LAYERS, WEIGHT_LAYERS
from blockzoo.init._records import get_record, same_values

__all__ = ["InitReport", "InitRow", "init_report"]


@dataclass(frozen=True)
class InitRow:
    """One parameter in an :class:`InitReport`.

    Attributes:
        name: Qualified parameter name.
        shape: Its shape.
        initializer: The initializer blockzoo last applied, PyTorch's default
            (``"torch default"``), ``"?"`` when unknown, or ``"-"`` for a lazy parameter.
        expected_std: The std that initializer promises, or ``None``.
        measured_std: The std of the values now (``nan`` for one value or a meta tensor).
        status: ``"initialized"`` (by blockzoo, unchanged since),
            ``"modified"`` (by blockzoo, changed since: trained or loaded),
            ``"torch default"`` (never initialised by blockzoo, and its values
            fit PyTorch's default initialisation), or ``"unknown"``.

    Example:
        >>> import torch
        >>> from blockzoo import init_report, init_weights
        >>> layer = torch.nn.Linear(64, 32)
        >>> _ = init_weights(layer, "kaiming_normal")
        >>> row = init_report(layer).rows[0]
        >>> row.name, row.shape, row.initializer, row.status
        ('weight', (32, 64), 'kaiming_normal', 'initialized')
        >>> round(row.expected_std, 4)  # sqrt(2 / fan_in)
        0.1768
    """

    name: str
    shape: tuple[int, ...]
    initializer: str
    expected_std: float | None
    measured_std: float
    status: str

    @property
    def at_torch_default(self) -> bool:
        """Whether the parameter still holds PyTorch's default initialisation."""
        return self.status == "torch default"


class InitReport:
    """Rows of :class:`InitRow`, printable as a table.

    The rows are built when first used, so that :func:`~blockzoo.init_weights`
    does not pay for measuring every parameter when nobody reads its report.

    Example:
        >>> import torch
        >>> from blockzoo import init_report, init_weights
        >>> model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        >>> _ = init_weights(model[0], "kaiming_normal")  # the first layer only
        >>> report = init_report(model)
        >>> [row.status for row in report]
        ['initialized', 'initialized', 'torch default', 'torch default']
        >>> print(report)  # doctest: +NORMALIZE_WHITESPACE +ELLIPSIS
        name      shape     initializer     expected std  measured std  status
        0.weight  [32, 64]  kaiming_normal  0.1768        ...           initialized
        ...
    """

    def __init__(self, rows: list[InitRow] | Callable[[], list[InitRow]]) -> None:
        self._rows = rows

    @property
    def rows(self) -> list[InitRow]:
        """The rows, one per parameter (measured when first asked for)."""
        if callable(self._rows):
            self._rows = self._rows()
        return self._rows

    def __iter__(self) -> Iterator[InitRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> InitRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no parameter named {name!r} in this report")

    @property
    def at_torch_default(self) -> list[str]:
        """Names of the parameters that still hold PyTorch's default initialisation."""
        return [row.name for row in self.rows if row.at_torch_default]

    def __str__(self) -> str:
        header = ("name", "shape", "initializer", "expected std", "measured std", "status")
        cells = [header] + [
            (
                r.name,
                str(list(r.shape)),
                r.initializer,
                "-" if r.expected_std is None else f"{r.expected_std:.4g}",
                f"{r.measured_std:.4g}",
                r.status,
            )
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)

    def __repr__(self) -> str:
        return f"InitReport({len(self)} parameters)"


def _std(t: Tensor) -> float:
    if t.is_meta or t.numel() < 2:
        return math.nan
    return float(t.detach().float().std())


def _torch_default(owner: nn.Module, pname: str, t: Tensor, std: float) -> tuple[str, float | None] | None:
    """``(label, expected std)`` when ``t`` fits the default init of ``owner``'s class, else ``None``."""
    if t.is_meta:
        return None
    if isinstance(owner, WEIGHT_LAYERS):
        # kaiming_uniform_(a=sqrt(5)) for the weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias
        # share one bound, 1/sqrt(fan_in), hence one std, bound / sqrt(3).
        fan_in = owner.weight[0].numel()  # torch's fan in, for transposed convs too
        bound = 1 / math.sqrt(fan_in)
        expected = bound / math.sqrt(3)
        if float(t.detach().abs().max()) > bound * (1 + 1e-6):
            return None
        # The sample std of n uniform draws has a relative standard error of sqrt(0.2 / n).
        if t.numel() >= 2 and abs(std - expected) > 4 * expected * math.sqrt(0.2 / t.numel()):
            return None
        return "torch default", expected
    if isinstance(owner, NORM_LAYERS) and not isinstance(owner, nn.LocalResponseNorm):
        value = 0.0 if pname == "bias" else 1.0
        return ("torch default", 0.0) if bool(torch.all(t == value)) else None
    if isinstance(owner, nn.Embedding):
        if t.numel() >= 2 and abs(std - 1) > 4 / math.sqrt(2 * t.numel()):
            return None
        return "torch default", 1.0
    return None


def init_report(model: nn.Module) -> InitReport:
    """Per parameter: the initializer last applied, its expected std, the measured std, and a status.

    Parameters that blockzoo never initialised are checked against PyTorch's
    default initialisation of their layer (conv, linear, norms, embedding):
    :attr:`InitReport.at_torch_default` lists those that still hold it.

    Args:
        model: Any module.

    Returns:
        An :class:`InitReport`; ``print`` it for a table.

    Example:
        >>> import torch
        >>> from blockzoo import init_report
        >>> init_report(torch.nn.Linear(256, 16)).at_torch_default
        ['weight', 'bias']
    """
    check_module("model", model)
    rows = []
    seen: set[int] = set()
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:  # shared: reported under its first name, as named_parameters() does
                continue
            seen.add(id(p))
            name = f"{mname}.{pname}" if mname else pname
            if isinstance(p, nn.parameter.UninitializedParameter):  # a lazy layer before its first forward
                rows.append(InitRow(name, (), "-", None, math.nan, "uninitialized"))
                continue
            std = _std(p)
            record = get_record(module, pname)
            if record is not None:
                status = "initialized" if same_values(record.fingerprint, p) else "modified"
                rows.append(InitRow(name, tuple(p.shape), record.initializer, record.expected_std, std, status))
                continue
            default = _torch_default(module, pname, p, std)
            if default is not None:
                rows.append(InitRow(name, tuple(p.shape), default[0], default[1], std, "torch default"))
            else:
                rows.append(InitRow(name, tuple(p.shape), "?", None, std, "unknown"))
    return InitReport(rows)
