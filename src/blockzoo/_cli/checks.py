"""Checks of command-line values: one object per kind, for a flag's text and for a config file's value.

A flag's text is parsed (``"3e-3"`` -> ``0.003``) and then checked exactly as
the same value read from a JSON or TOML file is checked, by the shared
validators of :mod:`blockzoo._checks`, so both give the same message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from blockzoo._checks import check_choice, check_device, check_int, check_number
from blockzoo._names import as_patterns

__all__ = [
    "BoolCheck",
    "Check",
    "ChoiceCheck",
    "DeviceCheck",
    "FloatCheck",
    "GlobsCheck",
    "IntCheck",
    "NameCheck",
    "NamedConfigCheck",
    "PathCheck",
]


class Check:
    """How one option's value is read and checked; subclasses say what the value is."""

    def value(self, name: str, value: Any) -> Any:
        """``value`` (from a config file) when it is valid, else ``ValueError`` / ``TypeError`` naming ``name``."""
        raise NotImplementedError

    def text(self, name: str, text: str) -> Any:
        """The value that a flag's ``text`` stands for, checked as :meth:`value` checks."""
        return self.value(name, text)


@dataclass(frozen=True)
class IntCheck(Check):
    """An int with a lower bound."""

    low: int

    def value(self, name: str, value: Any) -> int:
        return check_int(name, value, low=self.low)

    def text(self, name: str, text: str) -> int:
        try:
            parsed: Any = int(text)
        except ValueError:
            parsed = text  # not an int: the check says so
        return self.value(name, parsed)


@dataclass(frozen=True)
class FloatCheck(Check):
    """A finite real number within bounds."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def value(self, name: str, value: Any) -> float:
        high = None if math.isinf(self.high) else self.high
        return check_number(name, value, low=self.low, high=high, low_open=self.low_open, high_open=self.high_open)

    def text(self, name: str, text: str) -> float:
        try:
            parsed: Any = float(text)
        except ValueError:
            parsed = text
        return self.value(name, parsed)


@dataclass(frozen=True)
class ChoiceCheck(Check):
    """One of a few fixed strings."""

    choices: tuple[str, ...]

    def value(self, name: str, value: Any) -> str:
        return check_choice(name, value, self.choices)


class BoolCheck(Check):
    """``true`` or ``false`` in a config file (flags are ``--x`` / ``--no-x``)."""

    def value(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false. Received: {name}={value!r}")
        return value


class PathCheck(Check):
    """A file or folder path, as a string."""

    def value(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a path (a non-empty string). Received: {name}={value!r}")
        return value


class GlobsCheck(Check):
    """Parameter-name globs: one string or a list of strings."""

    def value(self, name: str, value: Any) -> list[str]:
        return list(as_patterns(value, name))

    def text(self, name: str, text: str) -> str:
        return text  # a repeatable flag: argparse collects the list


class DeviceCheck(Check):
    """``"auto"`` or a string that :class:`torch.device` accepts."""

    def value(self, name: str, value: Any) -> str:
        if value == "auto":
            return "auto"
        check_device(name, value, auto=True)
        return str(value)


@dataclass(frozen=True)
class NameCheck(Check):
    """A registered name; ``lookup`` raises :class:`~blockzoo.errors.UnknownNameError` (close matches) for others."""

    lookup: Callable[[str], object]

    def value(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a name (a string). Received: {name}={value!r}")
        self.lookup(value)
        return value


@dataclass(frozen=True)
class NamedConfigCheck(Check):
    """A registered name, or (in a config file) a table with ``name`` and the options of that factory.

    An optimizer ``{"name": "sgd", "momentum": 0.9}`` or a schedule
    ``{"name": "cosine", "warmup_steps": 100}``: the options are checked by
    the factory when training starts.
    """

    names: NameCheck

    def value(self, name: str, value: Any) -> str | dict[str, Any]:
        if isinstance(value, Mapping):
            if "name" not in value:
                raise ValueError(
                    f"{name} as a table needs a 'name' key (and the factory's options). Received: {name}={dict(value)!r}"
                )
            self.names.value(f"{name}.name", value["name"])
            return dict(value)
        return self.names.value(name, value)

    def text(self, name: str, text: str) -> str:
        return self.names.value(name, text)
