"""Type-exact equality of a spec dict's structure with a template's, in C: what spares the fast path
(:mod:`archsearch.spec._fast`) pickling a candidate that has the structure of the last one.

``a == b`` on dicts runs in C but is not type-exact: ``1 == 1.0 == True``, ``0.0 == -0.0``, a
``str`` or ``dict`` subclass equals its base, and key order is ignored; the strict schema tells
these apart, the pickle key does too. :func:`exact_checker` writes, once per template, a function
that, given a candidate already ``==`` to the template's structure, checks the rest in C: per
dict, its keys in order and the exact type of every key and value; per list, the exact type of
every item; per float zero, its sign. Only dicts, lists, ``str``, ``int``, ``float``, ``bool`` and
``None`` are taken (:data:`_LEAVES`): for those, ``==`` with the same types, the same key order and
the same zero signs means the same data, so pydantic validates both alike (pydantic reads content
alone: which objects are shared does not matter to it, although pickle writes it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["exact_checker"]

_LEAVES = frozenset((str, int, float, bool, type(None)))


class _Refused(Exception):
    """The template holds something the checker does not take (the pickle key still does)."""


def exact_checker(raw: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """A function ``check(a)`` that, for a plain dict ``a == raw``, tells whether ``a`` is ``raw``
    type-exactly (see the module docstring); ``None`` where ``raw`` holds other types.

    ``raw`` must not change afterwards (the fast path gives a private copy). The function is
    generated from ``raw`` (one statement per container), as :mod:`archsearch.spec._memo`
    generates its image functions."""
    lines: list[str] = []
    consts: dict[str, Any] = {"copysign": math.copysign}

    def const(value: Any) -> str:
        name = f"c{len(consts)}"
        consts[name] = value
        return name

    def visit(value: Any, expr: str, depth: int) -> None:
        if depth > 64:
            raise _Refused
        var = f"v{len(lines)}"
        lines.append(f"    {var} = {expr}")
        if value.__class__ is dict:
            if any(key.__class__ is not str for key in value):
                raise _Refused
            keys, types = tuple(value), tuple([v.__class__ for v in value.values()])
            strs = const((str,) * len(keys))
            lines.append(
                f"    if tuple({var}) != {const(keys)} or tuple(map(type, {var})) != {strs}"
                f" or tuple(map(type, {var}.values())) != {const(types)}: return False"
            )
            items: Any = value.items()
        else:  # a list
            types = tuple([v.__class__ for v in value])
            lines.append(f"    if tuple(map(type, {var})) != {const(types)}: return False")
            items = enumerate(value)
        for key, item in items:
            cls = item.__class__
            if cls is dict or cls is list:
                visit(item, f"{var}[{key!r}]", depth + 1)
            elif cls not in _LEAVES:
                raise _Refused
            elif cls is float and item == 0.0:  # 0.0 == -0.0: the sign too
                sign = math.copysign(1.0, item)
                lines.append(f"    if copysign(1.0, {var}[{key!r}]) != {sign!r}: return False")

    try:
        visit(raw, "a", 0)
    except _Refused:
        return None
    code = "def check(a):\n" + "\n".join(lines) + "\n    return True\n"
    exec(code, consts)  # generated from the template's own keys and types
    check: Callable[[dict[str, Any]], bool] = consts["check"]
    return check
