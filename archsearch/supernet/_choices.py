"""The choices of a space as a supernet sees them: which it can share (and which it refuses, with
the line), which way is "largest" for each, and the extreme members used to size the slots and
to train with the sandwich rule.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np

from ..errors import Issue, SpecError
from ..kinds import EMBEDS, MIXERS, STEMS, Share, mixable
from ..space import Choice, FloatRange, IntRange, SearchSpace

__all__ = ["ExtremeSuggest", "covering_overrides", "direction", "refusals"]

#: Fields of a stage, of the spec and of the head that are not a kind's, and how they share.
_PLAIN = Share(
    nested=("dim", "depth", "depths", "mlp_ratio", "expansion", "conv"),
    reuse=("drop_path", "norm_eps", "dropout"),
    refuse={
        "input": "one supernet is trained at one input size and channel count; set `input_size` "
        "in the experiment, not as a choice",
        "num_classes": "the data set sets the classes of every member",
        "dynamic_size": "a supernet member is built for the input it is trained on",
    },
)
_MAX_COVER = 4096
_TOKEN = re.compile(r"([^.\[]+)(?:\[([^\]]*)\])?")


def refusals(space: SearchSpace) -> list[Issue]:
    """The choices of ``space`` that a supernet cannot share: on the input, the classes, or a
    field a kind's :attr:`~archsearch.kinds.Share.refuse` names; each issue names the choice's
    file and line and the reason."""
    issues: list[Issue] = []
    _walk(space, space.tree, (), None, issues)
    return issues


def _walk(
    space: SearchSpace, value: Any, path: tuple[Any, ...], share: Share | None, out: list[Issue]
) -> None:
    if isinstance(value, Choice | IntRange | FloatRange):
        field = next((p for p in reversed(path) if isinstance(p, str)), "")
        top = path[0] if path else ""
        reason = None
        if top in ("input", "num_classes", "dynamic_size"):
            reason = _PLAIN.refuse[str(top)]
        elif path[-2:] == ("head", "num_classes"):
            reason = _PLAIN.refuse["num_classes"]
        elif share is not None and field in share.refuse:
            reason = share.refuse[field]
        elif isinstance(value, Choice) and value.per_block and path[-1:] == ("mixer",):
            reason = _per_block_mixers(value)
        if reason is not None:
            out.append(space.source.issue(value.path, f"a supernet cannot share this choice: {reason}"))
        if isinstance(value, Choice):
            for option in value.options:
                _walk(space, option, path, _share_of(path, option, share), out)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _walk(space, item, (*path, i), share, out)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(space, item, (*path, key), _share_of((*path, key), item, share), out)


def _per_block_mixers(choice: Choice) -> str | None:
    """Why a per-block mixer choice cannot be shared (``None``: it can): every block of a stage
    must take a mixer of one family, and one that can be one block's (kinds/_mixed.py)."""
    options = choice.options
    kinds = [o if isinstance(o, str) else (o.get("kind") if isinstance(o, dict) else None) for o in options]
    known = [k for k in kinds if isinstance(k, str) and k in MIXERS]
    families = sorted({MIXERS.get(k).family for k in known})
    if len(families) > 1:
        return (
            f"its options are mixers of several families ({', '.join(families)}), and a stage's "
            "blocks are of one family: most members would be invalid"
        )
    whole = [k for k in known if not mixable(MIXERS.get(k))]
    if whole:
        return f"mixer {whole[0]!r} acts on the whole stage and cannot be one block's"
    return None


def _share_of(path: tuple[Any, ...], value: Any, current: Share | None) -> Share | None:
    """The rule of the kind that owns ``value`` (at ``path``), when ``value`` names one."""
    where = path[-1] if path else None
    kind = value if isinstance(value, str) else value.get("kind") if isinstance(value, dict) else None
    registries: dict[str, Any] = {"mixer": MIXERS, "embed": EMBEDS, "stem": STEMS}
    registry = registries.get(where) if isinstance(where, str) else None
    if registry is not None and isinstance(kind, str) and kind in registry:
        share: Share = registry.get(kind).share
        return share
    return current


def _tokens(name: str) -> list[tuple[str, str | None]]:
    """``stages.1.mixer[attention].kv_stride`` -> ``[(stages, None), ..., (mixer, attention),
    (kv_stride, None)]``; per-block names lose their ``blocks.N``."""
    tokens = [(m.group(1), m.group(2)) for m in _TOKEN.finditer(name)]
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(tokens):
        if tokens[i][0] == "blocks" and i + 1 < len(tokens) and tokens[i + 1][0].isdigit():
            i += 2
            continue
        out.append(tokens[i])
        i += 1
    return out


def normal_name(name: str) -> str:
    """A draw's name without its block index (one override serves every block of a stage)."""
    return re.sub(r"\.blocks\.(\d+|\*)\.", ".", name)


def direction(space: SearchSpace, name: str) -> str | None:
    """``max``/``min``: the draw's largest weights are at its largest/smallest value (widths and
    kernels / strides, whose smaller values keep larger maps); ``None``: every value has weights
    of its own (structural) or the way is unknown, and the covering members try each value."""
    return _direction(space, normal_name(name))


@cache
def _direction(space: SearchSpace, name: str) -> str | None:
    tokens = _tokens(name)
    field = next((t for t, _ in reversed(tokens) if not t.isdigit()), "")
    share = _owner_share(space, tokens)
    way = share.direction(field) if share is not None else None
    return way if way is not None else _PLAIN.direction(field)


def _owner_share(space: SearchSpace, tokens: list[tuple[str, str | None]]) -> Share | None:
    """The rule of the kind whose field the draw is (walking the space's tree along the name)."""
    node: Any = space.tree
    share = None
    for key, label in tokens[:-1]:
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return share
        if isinstance(node, Choice):
            if label is None:
                return share
            labels = [str(x) for x in node.labels]
            if label not in labels:
                return share
            node = node.options[labels.index(label)]
        share = _share_of((key,), node, share)
    return share


def covering_overrides(space: SearchSpace) -> list[dict[str, int]]:
    """Overrides (normalised draw name -> option index) of the members whose union of slot
    shapes covers every member of ``space``: per stage, every combination of its structural
    draws (each with the other stages at their first option; the stem's draws combine with the
    first stage's, whose first block takes the stem's channels); numeric draws with a direction
    take their extreme in :class:`ExtremeSuggest`.

    Raises :class:`SpecError` when a stage has more than 4096 structural combinations."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for dim in space.dimensions():
        name = normal_name(dim.name)
        if dim.kind == "float" or (dim.kind == "int" and direction(space, name) is not None):
            continue  # a float has no options to try; an int with a direction takes its extreme
        if dim.kind == "categorical" and direction(space, name) is not None and _numeric(dim.domain):
            continue
        if name.startswith("stages."):
            group = ".".join(name.split(".")[:2])
        else:  # the stem's output is the first stage's input: their structures combine
            group = "stages.0" if name.split(".")[0] == "stem" else ""
        groups.setdefault(group, []).append((name, int(dim.count)))
    out: list[dict[str, int]] = [{}]
    for group, draws in groups.items():
        total = int(np.prod([n for _, n in draws]))
        if total > _MAX_COVER:
            raise SpecError(
                Issue(
                    (group or "space",),
                    "a supernet needs every combination of the structural choices of "
                    f"{group or 'the space'}: {total} combinations is more than {_MAX_COVER}",
                    file=space.source.file,
                )
            )
        for combo in itertools.product(*(range(n) for _, n in draws)):
            if any(combo):
                out.append({name: i for (name, _), i in zip(draws, combo, strict=True)})
    return out


def _numeric(domain: str) -> bool:
    try:
        [float(x) for x in domain.split(", ")]
    except ValueError:
        return False
    return True


class ExtremeSuggest:
    """A :class:`~archsearch.space.Suggest` that takes every draw with a :func:`direction` at its
    extreme (``largest=True``: the widest member; ``False``: the narrowest), and a structural
    draw from ``overrides`` (option index by :func:`normal_name`), else at random from ``rng``,
    else its first option."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        largest: bool = True,
        overrides: Mapping[str, int] | None = None,
        rng: np.random.Generator | None = None,
    ):
        self.space, self.largest, self.rng = space, largest, rng
        self.overrides = dict(overrides or {})

    def _way(self, name: str) -> str | None:
        way = direction(self.space, name)
        if way is None or self.largest:
            return way
        return "min" if way == "max" else "max"

    def _pick(self, name: str, count: int) -> int:
        key = normal_name(name)
        if key in self.overrides:
            return self.overrides[key] % count
        return int(self.rng.integers(count)) if self.rng is not None else 0

    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        way = self._way(name)
        if way is not None and all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices):
            return max(choices) if way == "max" else min(choices)
        return choices[self._pick(name, len(choices))]

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        way = self._way(name)
        top = low + (high - low) // step * step
        if way is not None:
            return top if way == "max" else low
        return low + self._pick(name, (high - low) // step + 1) * step

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        way = self._way(name)
        if way == "min":
            return low
        if way == "max" or step is None:
            return high if way == "max" else low
        return low + self._pick(name, int((high - low) / step + 1e-9) + 1) * step
