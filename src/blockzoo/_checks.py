"""The argument validators every floor uses.

One message format everywhere: name the argument, state the rule, show what
was received.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "check_choice",
    "check_int_tuple",
    "check_positive_int",
    "check_probability",
    "check_number",
    "check_spatial_dims",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any) -> int:
    """``value`` if it is an int >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int. Received: {name}={value!r}")
    return int(value)


def check_int_tuple(name: str, value: Any, n: int, *, minimum: int = 1) -> tuple[int, ...]:
    """An int or ``n`` ints, each >= ``minimum``, as a tuple of ``n`` ints."""
    items = (value,) * n if _is_int(value) else value
    if not isinstance(items, Sequence) or len(items) != n or not all(_is_int(v) and v >= minimum for v in items):
        raise ValueError(
            f"{name} must be an int >= {minimum} or a sequence of {n} such ints. Received: {name}={value!r}"
        )
    return tuple(int(v) for v in items)


def check_number(name: str, value: Any, *, low: float, high: float | None = None) -> float:
    """``value`` as a float when it is a real number in ``[low, high]`` (NaN never is)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value >= low
        or (high is not None and not value <= high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a number {bound}. Received: {name}={value!r}")
    return float(value)


def check_probability(name: str, value: Any) -> float:
    """``value`` if it is a real number in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}. Received: {name}={value!r}")
    return str(value)


def check_spatial_dims(value: Any, allowed: Sequence[int] = (1, 2, 3)) -> int:
    """``value`` if it is one of the allowed spatial ranks."""
    if not _is_int(value) or value not in allowed:
        raise ValueError(
            f"spatial_dims must be one of {', '.join(map(str, allowed))}. Received: spatial_dims={value!r}"
        )
    return int(value)
