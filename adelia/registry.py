"""A name -> definition registry with explicit registration and "did you mean" misses.

Latent models, likelihood families and priors each live in one registry; a definition is
added with ``@REGISTRY.register("name", "alias", ...)`` next to its code.
"""

from __future__ import annotations

__all__ = ["Registry"]

import difflib
from typing import Callable, Generic, TypeVar

from adelia.errors import Span, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._canonical: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            for n in (name, *aliases):
                if n in self._items:
                    raise ValueError(f"{self.kind} {n!r} registered twice")
                self._items[n] = obj
                self._canonical[n] = name
            return obj

        return deco

    def names(self) -> list[str]:
        return sorted(set(self._canonical.values()))

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str, *, source: str | None = None, span: Span | None = None,
            filename: str = "<formula>") -> T:
        """The definition called ``name``; an :class:`UnknownNameError` naming the closest ones (up
        to three, closest first) and every registered name if absent."""
        if name in self._items:
            return self._items[name]
        close = [] if not isinstance(name, str) else difflib.get_close_matches(name, list(self._items), n=6, cutoff=0.6)
        near = list(dict.fromkeys(self._canonical[c] for c in close))[:3]
        guess = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
        known = ", ".join(self.names())
        raise UnknownNameError(f"unknown {self.kind} '{name}' ({guess}known: {known})",
                               source=source, span=span, filename=filename)
