"""A strict, typed name -> object registry.

Every registry in blockzoo (layers, models, optimizers, initializers) is a
:class:`Registry`: registering a name twice raises, registration has no side
effects, and an unknown name raises :class:`~blockzoo.errors.UnknownNameError`
with close matches and the call that lists them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar, overload

from blockzoo._names import GlobsLike, as_patterns, close_matches, format_choices, matches_any
from blockzoo.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A strict mapping from names to objects of one kind.

    Args:
        kind: What the registry holds, for messages (``"act layer"``, ``"model"``).
        list_call: The public call that lists every name, for messages
            (``"blockzoo.list_models()"``).

    Example:
        >>> from blockzoo._registry import Registry
        >>> colors: Registry[int] = Registry("color", list_call="colors.list()")
        >>> @colors.register("red")
        ... def red() -> int:
        ...     return 1
        >>> colors.register("blue", 2, aliases=("navy",))
        2
        >>> colors.list(), "navy" in colors, colors.get("navy")
        (['blue', 'red'], True, 2)
    """

    def __init__(self, kind: str, *, list_call: str) -> None:
        self.kind = kind
        self.list_call = list_call
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    @overload
    def register(self, name: str, obj: None = None, *, aliases: Sequence[str] = ()) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, aliases: Sequence[str] = ()) -> T: ...

    def register(self, name: str, obj: T | None = None, *, aliases: Sequence[str] = ()) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name`` (and ``aliases``); a decorator when ``obj`` is omitted.

        Raises:
            TypeError: ``name`` or an alias is not a non-empty string.
            ValueError: the name or an alias is already registered.
        """
        names = (name, *aliases)
        for n in names:
            if not isinstance(n, str) or not n:
                raise TypeError(f"A {self.kind} name must be a non-empty string. Received: name={n!r}")
            if n in self:
                raise ValueError(
                    f"A {self.kind} named {n!r} is already registered; names are unique. "
                    f"Pick another name. Received: name={n!r}"
                )

        def add(item: T) -> T:
            self._items[name] = item
            for alias in aliases:
                self._aliases[alias] = name
            return item

        if obj is None:
            return add
        return add(obj)

    def canonical(self, name: str) -> str:
        """The registered name that ``name`` (a name or an alias) stands for."""
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        choices = [*self._items, *self._aliases]
        hint = close_matches(name, choices) if isinstance(name, str) else []
        did_you_mean = f" Did you mean {format_choices(hint)}?" if hint else ""
        raise UnknownNameError(f"Unknown {self.kind} {name!r}.{did_you_mean} {self.list_call} lists them all.")

    def get(self, name: str) -> T:
        """The object registered under ``name`` or one of its aliases.

        Raises:
            UnknownNameError: nothing is registered under ``name``.
        """
        return self._items[self.canonical(name)]

    def list(self, include: GlobsLike = "*", exclude: GlobsLike = None) -> list[str]:
        """Sorted registered names matching any ``include`` glob and no ``exclude`` glob."""
        inc = as_patterns(include, "include") or ("*",)
        exc = as_patterns(exclude, "exclude")
        return sorted(n for n in self._items if matches_any(n, inc) and not matches_any(n, exc))

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry(kind={self.kind!r}, names={len(self)})"
