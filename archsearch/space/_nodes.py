"""Choice nodes: the values of a search space that are still to be decided.

Anywhere a spec takes a value, a space may instead write::

    {choice: [a, b, c]}                 # categorical; options may be whole mappings (nested)
    {int: [low, high], step: 1}         # integer range, inclusive (``log: true`` for log-uniform)
    {float: [low, high], log: true}     # real range (``step`` makes it discrete)

and add ``per_block: true`` inside a stage to draw one value per block of that stage.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from ..core import MAX_RANGE_VALUES
from ..errors import Issue, SpecError
from ..spec import SourceMap

__all__ = ["NODE_KEYS", "Choice", "FloatRange", "IntRange", "Node", "parse_tree", "size_text"]

NODE_KEYS = ("choice", "int", "float")
_MODIFIERS = {
    "choice": ("per_block",),
    "int": ("step", "log", "per_block"),
    "float": ("step", "log", "per_block"),
}

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Choice:
    """Pick one of ``options``; ``labels`` are what the sampler sees (scalars)."""

    options: tuple[Any, ...]
    labels: tuple[Any, ...]
    per_block: bool
    path: Path

    @property
    def nested(self) -> bool:
        """Whether an option holds further choices (their names then carry this option's label)."""
        return any(_has_nodes(o) for o in self.options)


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int
    log: bool
    per_block: bool
    path: Path

    @property
    def count(self) -> int:
        return (self.high - self.low) // self.step + 1


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    step: float | None
    log: bool
    per_block: bool
    path: Path

    @property
    def count(self) -> float:
        return math.inf if self.step is None else math.floor((self.high - self.low) / self.step + 1e-9) + 1


Node = Choice | IntRange | FloatRange


def _has_nodes(value: Any) -> bool:
    if isinstance(value, Choice | IntRange | FloatRange):
        return True
    if isinstance(value, dict):
        return any(_has_nodes(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nodes(v) for v in value)
    return False


def parse_tree(value: Any, path: Path, source: SourceMap, *, in_stage: bool = False) -> Any:
    """Replace every node mapping in ``value`` by a :data:`Node`, checking its syntax."""
    if isinstance(value, dict):
        keys = [k for k in NODE_KEYS if k in value]
        if len(keys) > 1:
            raise source.error(path, f"a choice node has exactly one of {', '.join(NODE_KEYS)}", value=keys)
        if keys:
            return _parse_node(keys[0], value, path, source, in_stage=in_stage)
        _refuse_misspelt_node(value, path, source)
        return {
            k: parse_tree(
                v, (*path, k), source, in_stage=in_stage or (len(path) == 2 and path[0] == "stages")
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [parse_tree(v, (*path, i), source, in_stage=in_stage) for i, v in enumerate(value)]
    return value


#: Other words for the node keys that a space author may reach for.
_ALIASES = {"choices": "choice", "options": "choice", "one_of": "choice", "range": "int"}
_MODIFIER_KEYS = ("per_block", "step", "log")


def _refuse_misspelt_node(value: dict[str, Any], path: Path, source: SourceMap) -> None:
    """A mapping that looks like a choice node with its key misspelt (``{choise: [2, 4]}``, keys
    all node-like): an error that suggests the key, rather than the schema's "expected a number".
    A mapping with any other key (a mixer, an embedding) is left to the schema."""
    guesses: dict[str, str] = {}
    for key in value:
        if not isinstance(key, str):
            return
        if key in _MODIFIER_KEYS:
            continue
        close = difflib.get_close_matches(key, NODE_KEYS, n=1, cutoff=0.8)
        meant = _ALIASES.get(key) or (close[0] if close else None)
        if meant is None:
            return
        guesses[key] = meant
    if guesses:
        key, meant = next(iter(guesses.items()))
        raise source.error(
            (*path, key),
            f"not a choice node key (did you mean {meant!r}?)",
            value=key,
            allowed=f"{', '.join(NODE_KEYS)} (with {', '.join(_MODIFIER_KEYS)})",
        )


def _parse_node(kind: str, raw: dict[str, Any], path: Path, source: SourceMap, *, in_stage: bool) -> Node:
    allowed = (kind, *_MODIFIERS[kind])
    for key in raw:
        if key not in allowed:
            raise source.error(
                (*path, key), f"unknown key {key!r} in a {kind!r} node", allowed=", ".join(allowed)
            )
    per_block = raw.get("per_block", False)
    if not isinstance(per_block, bool):
        raise source.error((*path, "per_block"), "expected true or false", value=per_block)
    if per_block and not in_stage:
        raise source.error(
            (*path, "per_block"), "per_block draws one value per block, so it belongs inside a stage"
        )
    if kind == "choice":
        return _parse_choice(raw["choice"], per_block, path, source)
    return _parse_range(kind, raw, per_block, path, source)


def _parse_choice(options: Any, per_block: bool, path: Path, source: SourceMap) -> Choice:
    where = (*path, "choice")
    if not isinstance(options, list) or not options:
        raise source.error(where, "expected a non-empty list of options", value=options)
    parsed = tuple(parse_tree(o, (*where, i), source) for i, o in enumerate(options))
    for i, option in enumerate(parsed):
        if isinstance(option, Choice | IntRange | FloatRange):  # it would have no label for the sampler
            raise source.error(
                (*where, i),
                "a choice node cannot be an option of a choice itself; list its values among these "
                "options, or put it inside a mapping option",
                value=options[i],
            )
    # one mixer per block: mappings without choices inside (a per-block mixer list, kinds/_mixed.py)
    mixers = path[-1:] == ("mixer",) and not any(isinstance(o, list) or _has_nodes(o) for o in parsed)
    if per_block and not mixers and any(isinstance(o, dict | list) for o in parsed):
        raise source.error(
            where,
            "per_block options must be plain values (one per block goes into a list), or mixers "
            "without choices inside them",
        )
    labels = _labels(parsed, where, source)
    return Choice(parsed, labels, per_block, path)


def _labels(options: tuple[Any, ...], where: Path, source: SourceMap) -> tuple[Any, ...]:
    """Scalars label themselves; a mapping by its ``kind`` (or ``i:kind`` where kinds repeat)."""
    kinds = [o.get("kind") if isinstance(o, dict) else None for o in options]
    labels: list[Any] = []
    for i, option in enumerate(options):
        if isinstance(option, dict):
            kind = kinds[i]
            unique = isinstance(kind, str) and kinds.count(kind) == 1
            labels.append(kind if unique else f"{i}:{kind}" if isinstance(kind, str) else f"{i}")
        elif isinstance(option, list):
            labels.append(str(option))
        else:
            labels.append(option)
    seen: set[Any] = set()
    for i, label in enumerate(labels):
        key = (type(label), label)
        if key in seen:
            raise source.error((*where, i), "the same option appears twice", value=options[i])
        seen.add(key)
    return tuple(labels)


def _parse_range(kind: str, raw: dict[str, Any], per_block: bool, path: Path, source: SourceMap) -> Node:
    bounds = raw[kind]
    number = int if kind == "int" else (int, float)
    shape = "[low, high] of integers" if kind == "int" else "[low, high] of numbers"
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or any(isinstance(b, bool) or not isinstance(b, number) for b in bounds)
    ):
        raise source.error((*path, kind), f"expected {shape}", value=bounds)
    low, high = bounds
    if low > high:
        raise source.error((*path, kind), "`low <= high` must hold", value=bounds)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise source.error((*path, "log"), "expected true or false", value=log)
    if log and low <= 0:
        raise source.error((*path, kind), "a log range needs `low > 0`", value=bounds)
    step = raw.get("step")
    if kind == "int":
        step = 1 if step is None else step
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise source.error((*path, "step"), "expected a positive integer", value=step)
        if log and step != 1:
            raise source.error((*path, "step"), "a log range takes no step (Optuna's rule)", value=step)
        count = (high - low) // step + 1
        if count > MAX_RANGE_VALUES:  # before anything enumerates or multiplies the range
            raise source.error(
                (*path, kind),
                f"the range takes {count:,} values",
                value=bounds,
                allowed=f"at most {MAX_RANGE_VALUES:,} values (`(high - low) // step + 1`)",
            )
        return IntRange(low, high, step, log, per_block, path)
    if step is not None and (isinstance(step, bool) or not isinstance(step, int | float) or step <= 0):
        raise source.error((*path, "step"), "expected a positive number", value=step)
    if step is not None and log:
        raise source.error((*path, "step"), "a log range takes no step (Optuna's rule)", value=step)
    return FloatRange(float(low), float(high), None if step is None else float(step), log, per_block, path)


def size_text(size: float) -> str:
    """A space's size (:meth:`SearchSpace.size`) for people: ``67,108,864 = 2^26`` while it has
    at most 15 digits, then ``2^2006`` or ``about 7.3e603`` (a per-block space of thousands of
    blocks has more members than Python writes out as digits), or ``infinite``."""
    if size == math.inf:
        return "infinite"
    size = int(size)
    power = size.bit_length() - 1 if size > 1 and size & (size - 1) == 0 else None
    if size < 10**15:
        return f"{size:,}" + (f" = 2^{power}" if power is not None else "")
    if power is not None:
        return f"2^{power}"
    exponent = math.log10(size)
    return f"about {10 ** (exponent % 1):.1f}e{int(exponent)}"


def node_error(node: Node, source: SourceMap, message: str, **kwargs: Any) -> SpecError:
    return SpecError(Issue(node.path, message, file=source.file, line=source.line_of(node.path), **kwargs))
