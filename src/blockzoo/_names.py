"""Small helpers shared by every name lookup: globs and close matches."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "GlobsLike",
    "as_patterns",
    "check_globs_match",
    "close_matches",
    "did_you_mean",
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


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'a', 'b'?`` naming the close matches of ``name`` (with a leading space), or ``""`` for none.

    Example:
        >>> from blockzoo._names import did_you_mean
        >>> did_you_mean("acuracy", ["accuracy", "loss"]), did_you_mean("xyz", ["accuracy"])
        (" Did you mean 'accuracy'?", '')
    """
    hint = close_matches(name, choices)
    return f" Did you mean {format_choices(hint)}?" if hint else ""


def check_globs_match(argname: str, patterns: Iterable[str], names: Sequence[str], *, what: str, received: Any) -> None:
    """Raise ``ValueError`` for the first glob in ``patterns`` that matches none of ``names``.

    The message names the argument and the glob, suggests up to three close
    names (or, failing that, shows the first few), and ends with what was
    received. ``what`` says what the names are, e.g. ``"parameter of Sequential"``.

    Example:
        >>> from blockzoo._names import check_globs_match
        >>> check_globs_match("include", ["0.wieght"], ["0.weight", "0.bias"], what="parameter", received="0.wieght")
        Traceback (most recent call last):
            ...
        ValueError: include glob '0.wieght' matches no parameter. Did you mean '0.weight'? Received: include='0.wieght'
    """
    for pattern in patterns:
        if any(fnmatch.fnmatchcase(name, pattern) for name in names):
            continue
        hint = close_matches(pattern, names)
        if hint:
            tail = f"Did you mean {format_choices(hint)}?"
        elif names:
            tail = f"The names look like {format_choices(names[:3])}."
        else:
            tail = "There are none."
        raise ValueError(f"{argname} glob {pattern!r} matches no {what}. {tail} Received: {argname}={received!r}")


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
