"""The argument validators every floor uses.

One message format everywhere: name the argument, state the rule, show what
was received, as in ``f"{name} must be <rule>. Received: {name}={value!r}"``.

Numbers follow one policy:

* ``bool`` is never a number (``True`` is an ``int`` to Python, not to us);
* NaN is always refused;
* infinity is refused unless the caller says it means something
  (``allow_inf=True``, e.g. a norm bound that may be "no bound"); a factor, a
  rate, a probability or a learning rate is never infinite;
* :func:`check_int` takes ints only, :func:`check_number` ints and floats
  (any :class:`numbers.Integral` or :class:`numbers.Real`, numpy scalars
  included) and returns a ``float``;
* bounds are closed unless ``low_open`` / ``high_open`` say otherwise.

This module is the ground floor: it imports nothing from blockzoo.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal, overload

import torch
from torch import nn

__all__ = [
    "check_bool",
    "check_choice",
    "check_device",
    "check_module",
    "check_int",
    "check_int_tuple",
    "check_number",
    "check_positive_int",
    "check_probability",
    "check_spatial_dims",
    "is_int",
    "is_real",
]


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer and not a ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (int or float, NaN and infinity included) and not a ``bool``."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fmt(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_fmt(high)}"
    return ""


def _number_rule(
    low: float | None, high: float | None, low_open: bool, high_open: bool, allow_inf: bool, alternative: str | None
) -> str:
    interval = _interval(low, high, low_open, high_open)
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        kind = "a number"  # infinity is outside the interval anyway
    elif allow_inf:
        kind = "a number" if interval else "a number other than NaN"
    else:
        kind = "a finite number"
    rule = f"{kind} {interval}" if interval else kind
    return f"{rule} or {alternative}" if alternative else rule


def _in_bounds(value: Any, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    if low is not None and not (value > low if low_open else value >= low):
        return False
    return high is None or bool(value < high if high_open else value <= high)


@overload
def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    high_open: bool = ...,
    allow_inf: bool = ...,
    allow_none: Literal[False] = ...,
    alternative: str | None = ...,
) -> float: ...
@overload
def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    high_open: bool = ...,
    allow_inf: bool = ...,
    allow_none: Literal[True],
    alternative: str | None = ...,
) -> float | None: ...
def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    allow_none: bool = False,
    alternative: str | None = None,
) -> float | None:
    """``value`` as a ``float`` when it is a real number within the bounds, else a ``ValueError``.

    Args:
        name: The argument's name, for the message.
        value: What the caller received.
        low: Lower bound, or ``None`` for none.
        high: Upper bound, or ``None`` for none.
        low_open: Exclude ``low`` itself.
        high_open: Exclude ``high`` itself.
        allow_inf: Accept ``inf`` / ``-inf`` (within the bounds); NaN never.
        allow_none: Accept ``None`` (returned as is).
        alternative: What else the caller accepts, for the message only
            (``"a callable of the step"`` gives ``"... >= 0 or a callable of
            the step"``); the caller handles those values before calling.

    Returns:
        ``float(value)``, or ``None`` when ``value`` is ``None`` and that is allowed.

    Raises:
        ValueError: ``value`` is not a number, is NaN, is infinite where that
            is not allowed, or is outside the bounds.

    Example:
        >>> from blockzoo._checks import check_number
        >>> check_number("rate", 1, low=0, high=1)
        1.0
        >>> check_number("rate", float("nan"), low=0, high=1)
        Traceback (most recent call last):
            ...
        ValueError: rate must be a number in [0, 1]. Received: rate=nan
        >>> check_number("lr", float("inf"), low=0)
        Traceback (most recent call last):
            ...
        ValueError: lr must be a finite number >= 0. Received: lr=inf
    """
    if value is None and allow_none:
        return None
    ok = (
        is_real(value)
        and not math.isnan(value)
        and (allow_inf or not math.isinf(value))
        and _in_bounds(value, low, high, low_open, high_open)
    )
    if not ok:
        rule = _number_rule(low, high, low_open, high_open, allow_inf, "None" if allow_none else alternative)
        raise ValueError(f"{name} must be {rule}. Received: {name}={value!r}")
    return float(value)


def _int_rule(low: int | None, high: int | None, allow_none: bool) -> str:
    if high is None and low == 1:
        rule = "a positive int"
    elif high is None and low == 0:
        rule = "a non-negative int"
    else:
        interval = _interval(low, high, False, False)
        rule = f"an int {interval}" if interval else "an int"
    return f"{rule} or None" if allow_none else rule


@overload
def check_int(
    name: str, value: Any, *, low: int | None = ..., high: int | None = ..., allow_none: Literal[False] = ...
) -> int: ...
@overload
def check_int(
    name: str, value: Any, *, low: int | None = ..., high: int | None = ..., allow_none: Literal[True]
) -> int | None: ...
def check_int(
    name: str, value: Any, *, low: int | None = None, high: int | None = None, allow_none: bool = False
) -> int | None:
    """``value`` as an ``int`` when it is an integer in ``[low, high]`` (a ``float`` such as ``3.0`` is not).

    Example:
        >>> from blockzoo._checks import check_int
        >>> check_int("warmup_steps", 0, low=0)
        0
        >>> check_int("warmup_steps", 2.0, low=0)
        Traceback (most recent call last):
            ...
        ValueError: warmup_steps must be a non-negative int. Received: warmup_steps=2.0
    """
    if value is None and allow_none:
        return None
    if not is_int(value) or not _in_bounds(value, low, high, False, False):
        raise ValueError(f"{name} must be {_int_rule(low, high, allow_none)}. Received: {name}={value!r}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """``value`` if it is an int >= 1."""
    return check_int(name, value, low=1)


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float if it is a real number in ``[0, 1)`` (a drop rate: 1 would drop everything)."""
    return check_number(name, value, low=0, high=1, high_open=True)


def check_int_tuple(name: str, value: Any, n: int, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or ``n`` ints, each >= ``minimum``, as a tuple of ``n`` ints."""
    items = (value,) * n if is_int(value) else value
    if not isinstance(items, Sequence) or len(items) != n or not all(is_int(v) and v >= minimum for v in items):
        raise ValueError(
            f"{name} must be an int >= {minimum} or a sequence of {n} such ints. Received: {name}={value!r}"
        )
    return tuple(int(v) for v in items)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False. Received: {name}={value!r}")
    return value


def check_module(name: str, value: Any, *, caller: str | None = None) -> nn.Module:
    """``value`` if it is an ``nn.Module``; ``caller`` (a function's name) prefixes the message when given."""
    if not isinstance(value, nn.Module):
        prefix = f"{caller}: " if caller else ""
        raise TypeError(f"{prefix}{name} must be an nn.Module. Received: {name}={type(value).__name__}")
    return value


def check_device(name: str, value: Any, *, auto: bool = False) -> torch.device:
    """``value`` read as a :class:`torch.device` (a device, or a string such as ``"cpu"`` or ``"cuda:1"``).

    ``auto=True`` only says in the message that the caller also takes ``"auto"`` (which it handles itself).
    """
    try:
        return torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        rule = "'auto' or a torch device" if auto else "a torch device"
        raise ValueError(
            f"{name} must be {rule} such as 'cpu', 'cuda', 'cuda:1' or 'mps'. Received: {name}={value!r}"
        ) from None


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}. Received: {name}={value!r}")
    return str(value)


def check_spatial_dims(value: Any, allowed: Sequence[int] = (1, 2, 3)) -> int:
    """``value`` if it is one of the allowed spatial ranks."""
    if not is_int(value) or value not in allowed:
        raise ValueError(
            f"spatial_dims must be one of {', '.join(map(str, allowed))}. Received: spatial_dims={value!r}"
        )
    return int(value)
