"""Plain checks of per-block values for the fast path (:mod:`archsearch.spec._fast`): what the
strict pydantic validator of those fields accepts, for the common inputs, without calling it.

The fields the fast path takes are :data:`~archsearch.core.PerBlockInt` and
:data:`~archsearch.core.PerBlockFloat` (each optionally ``| None``). For inputs of the exact
types ``int``, ``float``, ``list`` and ``None`` in range, a check here returns what the validator
returns (a strict float field takes an ``int`` as its ``float``; a list comes back as a new list);
anything else (bools, subclasses such as ``IntEnum``, out-of-range values, NaN, tuples) is not
decided here: :class:`CheckedValidator` then calls the pydantic validator itself, which accepts
it or raises its own error. ``tests/test_fast_path.py`` pins the two against each other.
"""

from __future__ import annotations

from collections.abc import Callable
from math import isnan
from operator import call
from typing import Any

from ..core import MAX_LIST, MAX_RATIO, MAX_WIDTH, PerBlockFloat, PerBlockInt

__all__ = ["CheckedValidator", "plain_check"]

#: Returned by a check that does not decide (the pydantic validator must).
UNDECIDED: Any = object()
_INT = {int}
_NUMBER = {int, float}


def _int(value: Any) -> Any:
    """PositiveInt (``0 < value <= MAX_WIDTH``), exact ``int``."""
    if value.__class__ is int and 0 < value <= MAX_WIDTH:
        return value
    return UNDECIDED


def _ints(value: Any) -> Any:
    """A list of 1 to MAX_LIST PositiveInts, exact ``int`` each: a copy."""
    if (
        value.__class__ is list
        and 0 < len(value) <= MAX_LIST
        and set(map(type, value)) == _INT
        and min(value) > 0
        and max(value) <= MAX_WIDTH
    ):
        return value.copy()
    return UNDECIDED


def _ratio(value: Any) -> Any:
    """Ratio (``0 < value <= MAX_RATIO``) from an exact ``float`` or ``int`` (as its float)."""
    cls = value.__class__
    if (cls is float or cls is int) and 0 < value <= MAX_RATIO:  # NaN fails the comparison
        return float(value)
    return UNDECIDED


def _ratios(value: Any) -> Any:
    """A list of 1 to MAX_LIST Ratios from exact floats or ints: a new list of floats."""
    if value.__class__ is list and 0 < len(value) <= MAX_LIST and set(map(type, value)) <= _NUMBER:
        floats = list(map(float, value))
        if min(floats) > 0 and max(floats) <= MAX_RATIO and not any(map(isnan, floats)):
            return floats
    return UNDECIDED


def _or_none(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        return None if value is None else check(value)

    return checked


_CHECKS: tuple[tuple[Any, Callable[[Any], Any], Callable[[Any], Any]], ...] = (
    (PerBlockInt, _int, _ints),
    (PerBlockFloat, _ratio, _ratios),
    (PerBlockInt | None, _or_none(_int), _ints),  # a list is never None
    (PerBlockFloat | None, _or_none(_ratio), _ratios),
)


def plain_check(annotation: Any, is_list: bool) -> Callable[[Any], Any] | None:
    """The plain check of a per-block field annotated ``annotation`` (one of the fast path's keyed
    annotations) for a value that is a list (``is_list``) or not, or ``None`` if there is none."""
    for known, scalar, listed in _CHECKS:
        if annotation == known:
            return listed if is_list else scalar
    return None


class CheckedValidator:
    """``validate_python(values)`` for a tuple of per-block values: the plain checks' results when
    every one decides, else the pydantic ``validator``'s (raising its ``ValidationError``)."""

    __slots__ = ("checks", "validator")

    def __init__(self, validator: Any, checks: tuple[Callable[[Any], Any], ...]):
        self.validator = validator
        self.checks = checks

    def validate_python(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The validated ``values`` (a tuple, one per check)."""
        out = tuple(map(call, self.checks, values))
        if UNDECIDED in out:  # the outputs are ints, floats, lists and None: compared by identity
            return self.validator.validate_python(values)  # type: ignore[no-any-return]
        return out
