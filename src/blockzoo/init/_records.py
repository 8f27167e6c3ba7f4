"""What initialised each parameter, for :func:`~blockzoo.init.init_report`.

A record lives on the module that owns the parameter, in a plain attribute
(``module.blockzoo_init``, a dict from the parameter's attribute name to its
record), so it travels with ``copy.deepcopy``, ``pickle`` and ``fit``'s
snapshots and never changes the state-dict keys. A parameter object cannot
carry it: ``nn.Parameter.__deepcopy__`` drops the attributes set on it.

Whether a parameter was changed since it was initialised is told by a
fingerprint of its values (sums in float64, see :func:`fingerprint`), which an
exact copy shares and an optimizer step or a load of other values changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["ATTRIBUTE", "Record", "fingerprint", "get_record", "same_values", "set_record"]

#: The attribute of a module that holds its parameters' records.
ATTRIBUTE = "blockzoo_init"


@dataclass(frozen=True, eq=False)
class Record:
    """The initializer last applied to a parameter by blockzoo.

    Attributes:
        initializer: How it reads in a report, such as ``"kaiming_normal(mode='fan_in')"``.
        expected_std: The std the initializer promises, or ``None``.
        fingerprint: :func:`fingerprint` of the values right after initialisation
            (``None`` for a tensor without data, on the meta device).
    """

    initializer: str
    expected_std: float | None
    fingerprint: Tensor | None


@torch.no_grad()
def fingerprint(tensor: Tensor) -> Tensor | None:
    """Three float64 numbers that change when ``tensor``'s values do, on its device (no host sync).

    The sum of squares, and the row sums and column sums of its ``[rows, -1]``
    view each weighted by their index, so that moving values between rows or
    columns (a flip, a permutation) changes it too. Computed on the values in
    their logical order, so a copy in another memory format reads the same
    (see :func:`same_values`). ``None`` for a tensor without data.
    """
    if tensor.is_meta or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    values = tensor.detach().reshape(tensor.shape[0] if tensor.dim() else 1, -1).to(torch.float64)
    rows = torch.arange(1, values.shape[0] + 1, dtype=torch.float64, device=values.device)
    cols = torch.arange(1, values.shape[1] + 1, dtype=torch.float64, device=values.device)
    return torch.stack([values.square().sum(), values.sum(1) @ rows, values.sum(0) @ cols])


def same_values(saved: Tensor | None, tensor: Tensor) -> bool:
    """Whether ``tensor`` still holds the values whose :func:`fingerprint` is ``saved``.

    Up to float64 rounding of the sums (a tolerance of 1e-9 of their scale),
    which differs between devices, thread counts and memory formats; any
    training step or load of other values moves them far more.
    """
    current = fingerprint(tensor)
    if saved is None or current is None:
        return saved is None and current is None
    saved = saved.to(current.device)
    n = tensor.numel()
    squares = max(float(saved[0]), float(current[0]))
    scale = torch.tensor(
        [squares, (n * squares) ** 0.5 * tensor.shape[0] if tensor.dim() else 1.0, (n * squares) ** 0.5 * n],
        dtype=torch.float64,
        device=current.device,
    )
    return bool(((current - saved).abs() <= 1e-9 * scale + 1e-300).all())


def set_record(module: nn.Module, name: str, initializer: str, expected_std: float | None) -> None:
    """Record that ``module``'s parameter ``name`` was just initialised by ``initializer``."""
    records = getattr(module, ATTRIBUTE, None)
    if not isinstance(records, dict):
        records = {}
        setattr(module, ATTRIBUTE, records)
    records[name] = Record(initializer, expected_std, fingerprint(getattr(module, name)))


def get_record(module: nn.Module, name: str) -> Record | None:
    """The record of ``module``'s parameter ``name``, if blockzoo initialised it."""
    records = getattr(module, ATTRIBUTE, None)
    record = records.get(name) if isinstance(records, dict) else None
    return record if isinstance(record, Record) else None
