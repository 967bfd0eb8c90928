"""Costs memoised by plan object: the normaliser hands out one shared (frozen) plan object for
blocks and stages alike, so most lookups hit without building a value key.

Each entry holds the plan itself, so its ``id`` cannot be recycled by another object while the
entry lives, and every lookup checks ``entry[0] is plan``. Memos are bounded (cleared when they
outgrow ``size``); with ``second_sight`` a value is stored only the second time its plan comes,
so one-off stage plans do not pile up as long-lived objects (which would make the garbage
collector's full passes come sooner).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import is_, itemgetter
from typing import Any, Generic, TypeVar

__all__ = ["ObjectMemo"]

V = TypeVar("V")


class ObjectMemo(Generic[V]):
    """``plan object -> value``, by identity, holding the object."""

    __slots__ = ("_entries", "_second_sight", "_seen", "_size")

    def __init__(self, size: int = 8192, second_sight: bool = False):
        self._entries: dict[int, tuple[Any, V]] = {}
        self._seen: set[int] = set()
        self._size = size
        self._second_sight = second_sight

    def get(self, plan: object) -> V | None:
        """The value stored for this very object, or ``None``."""
        entry = self._entries.get(id(plan))
        if entry is not None and entry[0] is plan:
            return entry[1]
        return None

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self._seen.clear()

    def put(self, plan: object, value: V) -> None:
        """Store ``value`` for ``plan`` (on its second sight, if so configured)."""
        key = id(plan)
        if self._second_sight and key not in self._seen:
            if len(self._seen) > 8 * self._size:
                self._seen.clear()
            self._seen.add(key)  # an id may come back as another object: admits early, never wrong
            return
        if len(self._entries) > self._size:
            self._entries.clear()
        self._entries[key] = (plan, value)

    def get_all(self, plans: Sequence[object], compute: Callable[[Any], V]) -> tuple[V, ...]:
        """The value of each of ``plans``: the stored one, else ``compute(plan)`` (then stored).

        When all are stored (a search's candidates share most blocks), the lookups run in C:
        ``map`` over the ids, then a check that each entry holds that very plan."""
        entries: tuple[Any, ...] = tuple(map(self._entries.get, map(id, plans)))
        if None not in entries and all(map(is_, map(_FIRST, entries), plans)):
            return tuple(map(_SECOND, entries))
        out = []
        for plan, entry in zip(plans, entries, strict=True):
            if entry is not None and entry[0] is plan:
                out.append(entry[1])
            else:
                value = compute(plan)
                self.put(plan, value)
                out.append(value)
        return tuple(out)


_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
