"""Costs memoised by plan object: the normaliser hands out one shared (frozen) plan object for
blocks and stages alike, so most lookups hit without building a value key.

Entries are keyed by ``id(plan)`` and the memo holds each plan while its entry lives, so an id in
the memo always belongs to the very plan it was stored for (a live object's id is unique): a
lookup is one dict access, with no check of identity. Memos are bounded (cleared when they
outgrow ``size``); with ``second_sight`` a value is stored only the second time its plan comes,
so one-off stage plans do not pile up as long-lived objects (which would make the garbage
collector's full passes come sooner).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["ObjectMemo"]

V = TypeVar("V")


class ObjectMemo(Generic[V]):
    """``plan object -> value``, by identity, holding the object."""

    __slots__ = ("_held", "_second_sight", "_seen", "_size", "_values", "by_id")

    def __init__(self, size: int = 8192, second_sight: bool = False):
        self._values: dict[int, V] = {}
        self._held: dict[int, Any] = {}
        """``id -> plan``: keeps every plan with an entry alive, so that its id stays its own."""
        self._seen: set[int] = set()
        self._size = size
        self._second_sight = second_sight
        self.by_id: Callable[[int], V | None] = self._values.get
        """``by_id(id(plan))``: :meth:`get` without a Python call (the dict's own ``get``; the
        dict is only ever cleared in place, so this stays its method)."""

    def get(self, plan: object) -> V | None:
        """The value stored for this very object, or ``None``."""
        return self._values.get(id(plan))

    def clear(self) -> None:
        """Forget every entry."""
        self._values.clear()
        self._held.clear()
        self._seen.clear()

    def put(self, plan: object, value: V) -> None:
        """Store ``value`` for ``plan`` (on its second sight, if so configured)."""
        key = id(plan)
        if self._second_sight and key not in self._seen:
            if len(self._seen) > 8 * self._size:
                self._seen.clear()
            self._seen.add(key)  # an id may come back as another object: admits early, never wrong
            return
        if len(self._values) > self._size:
            self._values.clear()
            self._held.clear()
        self._held[key] = plan
        self._values[key] = value

    def get_all(self, plans: Sequence[object], compute: Callable[[Any], V]) -> tuple[V, ...]:
        """The value of each of ``plans``: the stored one, else ``compute(plan)`` (then stored).

        When all are stored (a search's candidates share most blocks), the lookups run in C:
        ``map`` over the ids."""
        values = tuple(map(self._values.get, map(id, plans)))
        if None not in values:
            return values  # type: ignore[return-value]  # no None among them
        out = []
        for plan, value in zip(plans, values, strict=True):
            if value is None:
                value = compute(plan)
                self.put(plan, value)
            out.append(value)
        return tuple(out)
