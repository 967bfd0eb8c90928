"""Registries mapping spec kinds to the code that builds them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .._errors import Issue, SpecError

__all__ = ["BLOCKS", "EMBEDS", "STEMS", "Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> builder. Looking up an unknown name raises :class:`SpecError` listing the known ones."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._items[name] = item
            return item

        return add

    def get(self, name: str, path: tuple[str | int, ...] = (), source: Any = None) -> T:
        try:
            return self._items[name]
        except KeyError:
            issue = Issue(path, f"unknown {self.what} {name!r}", allowed=", ".join(sorted(self._items)))
            if source is not None:
                issue = source.issue(path, issue.message, allowed=issue.allowed)
            raise SpecError(issue) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


STEMS: Registry[Any] = Registry("stem")
EMBEDS: Registry[Any] = Registry("token embedding")
BLOCKS: Registry[Any] = Registry("block family")
