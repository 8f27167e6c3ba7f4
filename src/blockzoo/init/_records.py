"""What initialised each parameter, for :func:`~blockzoo.init.init_report`.

Records are kept by parameter identity and dropped with the parameter. A
plain ``WeakKeyDictionary`` cannot hold tensors (it compares keys with
``==``, which is elementwise for tensors), hence the id-keyed dict and a
finalizer per parameter.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from torch import Tensor

__all__ = ["Record", "get_record", "set_record"]


@dataclass(frozen=True)
class Record:
    """The initializer last applied to a parameter by blockzoo.

    Attributes:
        initializer: How it reads in a report, such as ``"kaiming_normal(mode='fan_in')"``.
        expected_std: The std the initializer promises, or ``None``.
        version: The tensor's version counter right after initialisation; a
            later in-place change (an optimizer step, ``load_state_dict``)
            moves it on.
    """

    initializer: str
    expected_std: float | None
    version: int


_RECORDS: dict[int, tuple[weakref.ref[Tensor], Record]] = {}


def set_record(tensor: Tensor, initializer: str, expected_std: float | None) -> None:
    key = id(tensor)
    entry = _RECORDS.get(key)
    if entry is None or entry[0]() is not tensor:
        weakref.finalize(tensor, _RECORDS.pop, key, None)
    _RECORDS[key] = (weakref.ref(tensor), Record(initializer, expected_std, tensor._version))


def get_record(tensor: Tensor) -> Record | None:
    entry = _RECORDS.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        return None
    return entry[1]
