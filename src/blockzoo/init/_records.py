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

import threading
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "ATTRIBUTE",
    "Record",
    "constant_fingerprint",
    "fingerprint",
    "get_record",
    "same_values",
    "set_record",
]

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


# The fingerprint's three paths, by size. Converting a large weight to float64 whole takes a fresh
# allocation twice its size (and square() another), and the kernel's zeroing of those new pages cost
# more than drawing the weight did; so on the CPU a large tensor goes a block of rows at a time
# through a float64 buffer that each thread keeps (see _buffer).

#: Up to this many elements, one matrix-vector product with the index weights gives all three sums.
_SMALL = 1 << 12
#: Up to this many elements (and on any device but the CPU, or for a row longer than ``_CHUNK``),
#: the float64 copy is made whole.
_WHOLE = 1 << 16
#: The buffer's size in elements (2 MiB); a block holds as many whole rows as fit in it.
_CHUNK = 1 << 18

_local = threading.local()


def _buffer(size: int) -> Tensor:
    """This thread's float64 CPU buffer of at least ``size`` elements, kept between calls (its pages stay mapped)."""
    buffer: Tensor | None = getattr(_local, "buffer", None)
    # a plain tensor only: one made under a tensor subclass's mode (FakeTensorMode) cannot take real values
    if type(buffer) is not torch.Tensor or buffer.numel() < size:
        buffer = _local.buffer = torch.empty(size, dtype=torch.float64)
    return buffer


def _index_weights(rows: int, cols: int, device: torch.device) -> Tensor:
    """``[2, rows * cols]``: each element's row index and column index (from 1), in row-major order."""
    row = torch.arange(1, rows + 1, dtype=torch.float64, device=device).repeat_interleave(cols)
    col = torch.arange(1, cols + 1, dtype=torch.float64, device=device).repeat(rows)
    return torch.stack([row, col])


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
    tensor = tensor.detach()
    rows = tensor.shape[0] if tensor.dim() else 1
    cols = tensor.numel() // rows
    if tensor.numel() <= _SMALL:  # few elements: the Python calls are the cost, so make few
        values = tensor.reshape(1, -1).to(torch.float64)
        return torch.mv(torch.cat([values, _index_weights(rows, cols, tensor.device)]), values[0])
    step = min(_CHUNK // cols, rows)
    if type(tensor) is not torch.Tensor or tensor.device.type != "cpu" or step < 1 or tensor.numel() <= _WHOLE:
        values = tensor.reshape(rows, cols).to(torch.float64)
        row_index = torch.arange(1, rows + 1, dtype=torch.float64, device=values.device)
        col_index = torch.arange(1, cols + 1, dtype=torch.float64, device=values.device)
        return torch.stack([values.square().sum(), values.sum(1) @ row_index, values.sum(0) @ col_index])
    return _fingerprint_by_rows(tensor, rows, cols, step)


def _fingerprint_by_rows(tensor: Tensor, rows: int, cols: int, step: int) -> Tensor:
    """:func:`fingerprint` of a large CPU tensor, ``step`` rows at a time (the same sums, in another order).

    Each block is copied into the buffer once and read three times: the sum of its squares, its column
    sums, and its column sums weighted by row index (whose total is the row-weighted sum). Every product
    adds into its result in place (an ``out=`` argument would cost a resize check per block).
    """
    f64 = torch.float64
    row_index = torch.arange(1, rows + 1, dtype=f64)
    col_sums, weighted = torch.zeros(cols, dtype=f64), torch.zeros(cols, dtype=f64)
    squares = []
    buffer, ones = _buffer(step * cols), torch.ones(step, dtype=f64)
    n = 0
    for block, index in zip(torch.split(tensor, step), torch.split(row_index, step), strict=True):
        if block.shape[0] != n:  # the first block, and a shorter last one
            n = block.shape[0]
            flat = buffer[: n * cols]
            shaped, columns, ones_n = flat.view(block.shape), flat.view(n, cols).mT, ones[:n]
        shaped.copy_(block)  # in any memory format, the copy is in logical order
        squares.append(torch.dot(flat, flat))
        col_sums.addmv_(columns, ones_n)
        weighted.addmv_(columns, index)
    col_index = torch.arange(1, cols + 1, dtype=f64)
    return torch.stack([torch.stack(squares).sum(), weighted.sum(), col_sums @ col_index])


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


def constant_fingerprint(value: float, tensor: Tensor) -> Tensor | None:
    """:func:`fingerprint` of ``tensor`` when every element holds ``value``, from the formula (no pass over it).

    ``value`` must be exactly representable in ``tensor``'s dtype (as 0 and 1 are). The three numbers
    are copied from the host, which on an accelerator waits for its queue, so :func:`set_record` uses
    this on the CPU only.
    """
    if tensor.is_meta or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    rows = tensor.shape[0] if tensor.dim() else 1
    cols = tensor.numel() // rows
    sums = [value * value * rows * cols, value * cols * rows * (rows + 1) / 2, value * rows * cols * (cols + 1) / 2]
    return torch.tensor(sums, dtype=torch.float64, device=tensor.device)


def set_record(
    module: nn.Module, name: str, initializer: str, expected_std: float | None, *, fill: float | None = None
) -> None:
    """Record that ``module``'s parameter ``name`` was just initialised by ``initializer``.

    ``fill``: the constant the parameter was just filled with (exactly representable in its dtype), if
    it was; on the CPU its fingerprint then comes from :func:`constant_fingerprint` without reading the
    values.
    """
    records = getattr(module, ATTRIBUTE, None)
    if not isinstance(records, dict):
        records = {}
        setattr(module, ATTRIBUTE, records)
    tensor = getattr(module, name)
    if fill is not None and tensor.device.type == "cpu":
        values = constant_fingerprint(fill, tensor)
    else:
        values = fingerprint(tensor)
    records[name] = Record(initializer, expected_std, values)


def get_record(module: nn.Module, name: str) -> Record | None:
    """The record of ``module``'s parameter ``name``, if blockzoo initialised it."""
    records = getattr(module, ATTRIBUTE, None)
    record = records.get(name) if isinstance(records, dict) else None
    return record if isinstance(record, Record) else None
