"""What initialised each parameter, for :func:`~blockzoo.init.init_report`.

A record lives on the module that owns the parameter, in a plain attribute
(``module.blockzoo_init``, a dict from the parameter's attribute name to its
record), so it travels with ``copy.deepcopy``, ``pickle`` and ``fit``'s
snapshots and never changes the state-dict keys. A parameter object cannot
carry it: ``nn.Parameter.__deepcopy__`` drops the attributes set on it.

Whether a parameter was changed since it was initialised is told by a
fingerprint of its values (their sum and sum of squares in float64), which an
exact copy shares and an optimizer step or a load of other values changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["ATTRIBUTE", "Record", "fingerprint", "get_record", "set_record"]

#: The attribute of a module that holds its parameters' records.
ATTRIBUTE = "blockzoo_init"


@dataclass(frozen=True)
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
    fingerprint: tuple[float, float] | None


@torch.no_grad()
def fingerprint(tensor: Tensor) -> tuple[float, float] | None:
    """The sum and the sum of squares of ``tensor``'s values in float64; ``None`` without data."""
    if tensor.is_meta or not (tensor.is_floating_point() or tensor.is_complex()):
        return None
    values = tensor.detach().abs() if tensor.is_complex() else tensor.detach()
    total = torch.stack([values.sum(dtype=torch.float64), values.square().sum(dtype=torch.float64)])
    first, second = total.tolist()  # one transfer from the device for both numbers
    return float(first), float(second)


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
