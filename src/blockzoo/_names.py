"""Small helpers shared by every name lookup: globs and close matches."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "GlobsLike",
    "as_patterns",
    "close_matches",
    "format_choices",
    "matches_any",
    "reject_unknown_keywords",
]

#: Name globs as users pass them: one glob, several, or ``None`` for no filter.
GlobsLike = str | Sequence[str] | None


def as_patterns(patterns: GlobsLike, argname: str) -> tuple[str, ...]:
    """Normalise ``None``, one glob or a sequence of globs to a tuple of globs."""
    if patterns is None:
        return ()
    if isinstance(patterns, str):
        return (patterns,)
    if isinstance(patterns, Sequence) and all(isinstance(p, str) for p in patterns):
        return tuple(patterns)
    raise TypeError(
        f"{argname} must be a glob string, a sequence of glob strings or None. Received: {argname}={patterns!r}"
    )


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``name`` matches at least one of the globs (case-sensitive)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` that look like ``name``, best first."""
    return difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)


def format_choices(names: Iterable[str]) -> str:
    """``'a', 'b', 'c'`` for a message."""
    return ", ".join(repr(n) for n in names)


def reject_unknown_keywords(kwargs: Mapping[str, Any], accepted: Sequence[str], *, owner: str) -> None:
    """Raise ``TypeError`` for the first keyword not in ``accepted``, with close matches and the full list."""
    for key in kwargs:
        if key not in accepted:
            hint = close_matches(key, accepted)
            did_you_mean = f" Did you mean {format_choices(hint)}?" if hint else ""
            raise TypeError(
                f"{owner} does not take {key!r}.{did_you_mean} It accepts: {format_choices(accepted)}. "
                f"Received: {key}={kwargs[key]!r}"
            )
