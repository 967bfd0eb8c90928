"""Search spaces: the spec grammar with choice nodes, sampled through a :class:`Suggest`.

Parameter names are readable paths into the spec: ``stages.1.mixer``, ``stages.0.dim``; a
``per_block`` node draws ``stages.2.blocks.7.mlp_ratio`` for block 7 of stage 2; a choice inside
a chosen option carries the option's label: ``stages.1.mixer[window].window``. The names and
domains do not depend on what was sampled before, so Optuna's storages accept them across
trials, and a trial's parameters turn back into the same spec (:meth:`SearchSpace.spec_from_params`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cost import CostReport, analytic_costs
from ..errors import Issue, SpecError
from ..kinds import FAMILY_ONLY_FIELDS, MIXER_FAMILY, MIXER_POS_EMBEDS
from ..spec import (
    NormalizedSpec,
    SourceMap,
    Spec,
    is_experiment,
    normalize,
    spec_from_dict,
)
from ._constraints import Bound, Constraints, load_constraints
from ._nodes import Choice, FloatRange, IntRange, Node, parse_tree
from ._suggest import DefaultSuggest, FixedSuggest, RandomSuggest, Suggest

__all__ = ["Bound", "Candidate", "Constraints", "Dimension", "Sample", "SearchSpace"]

SpacePath = tuple[str | int, ...]


@dataclass(frozen=True)
class Dimension:
    """One named draw of the space, as ``archsearch space`` lists it."""

    name: str
    kind: str  # categorical | int | float
    domain: str
    count: float  # options in one draw (inf for a continuous range)
    blocks: int | None = None  # per_block: draws in the stage (None where the depth varies)
    condition: str | None = None  # e.g. "stages.1.mixer = window"
    node: Node | None = field(default=None, repr=False, compare=False)  # the draw, with its file path


@dataclass
class Sample:
    """A sampled point: its parameters and the concrete spec data they give."""

    params: dict[str, Any]
    data: dict[str, Any]
    source: SourceMap

    def spec(self, *, shapes: bool = True) -> Spec:
        """Validate into a :class:`Spec`; errors name the line of the space file they come from."""
        return spec_from_dict(self.data, self.source, shapes=shapes)


@dataclass
class Candidate:
    """A sample checked before anything is built: its spec and costs, or why it was rejected."""

    sample: Sample
    spec: Spec | None = None
    costs: CostReport | None = None
    rejected: str | None = None
    violations: list[str] = field(default_factory=list)
    plan: NormalizedSpec | None = None
    """The normalised spec (None when the shapes are invalid): build, costs and hash read it."""


@dataclass
class _Ctx:
    """Where the resolver is: the name prefix of its draws and the current stage's depth."""

    name: list[str]
    stage: int | None = None
    depth: int | None = None


class SearchSpace:
    """A spec with choice nodes, plus ``constraints``."""

    def __init__(self, data: Mapping[str, Any], source: SourceMap | None = None, *, name: str | None = None):
        self.source = source or SourceMap()
        if not isinstance(data, Mapping):
            raise self.source.error((), "a search space is a mapping (a spec with choice nodes)", value=data)
        data = dict(data)
        self.raw = dict(data)
        if is_experiment(data):
            space = f": its space is {data['space']}" if isinstance(data.get("space"), str) else ""
            message = f"this is an experiment, not a search space{space}; `archsearch search` runs it"
            raise self.source.error((), message, allowed="a search space: a spec whose values may be choices")
        self.constraints = self._constraints(data.pop("constraints", None))
        self.name: str = name or data.get("name") or "space"
        if not isinstance(data.get("stages"), list):
            raise self.source.error(
                ("stages",), "a search space needs a list of 'stages'", value=data.get("stages")
            )
        self.tree: dict[str, Any] = parse_tree(data, (), self.source)
        self._check_options()

    # ------------------------------------------------------------------ loading and checking

    def _constraints(self, raw: Any) -> Constraints:
        return load_constraints(raw, self.source)

    def _check_options(self) -> None:
        """Every option of every node must fit the schema (typos fail here, at load time, with
        the line). Shapes are checked per sample: a combination may be impossible."""
        self.default().spec(shapes=False)
        for dim_name, values, requires in self._draws():
            for value in values:
                self.sample(DefaultSuggest({**requires, dim_name: value})).spec(shapes=False)

    # ------------------------------------------------------------------ sampling

    def sample(self, suggest: Suggest) -> Sample:
        """Draw every node through ``suggest``; return the parameters and the concrete spec."""
        self._depths: list[Any] | None = None
        params: dict[str, Any] = {}
        origins: dict[SpacePath, SpacePath] = {}
        recorder = _Recorder(suggest, params)
        data = self._resolve(self.tree, (), (), _Ctx([]), recorder, origins)
        line_of = functools.cache(self.source.line_of)  # per-block values share their node's line
        lines = {path: line for path, src in origins.items() if (line := line_of(src)) is not None}
        return Sample(params, data, SourceMap(file=self.source.file, lines=lines))

    def default(self) -> Sample:
        """The first option and lower bound of every node."""
        return self.sample(DefaultSuggest())

    def spec_from_params(self, params: Mapping[str, Any]) -> Spec:
        """The concrete spec a trial's parameters give (the inverse of :meth:`sample`)."""
        fixed = FixedSuggest(params)
        spec = self.sample(fixed).spec()
        unused = set(params) - fixed.used
        if unused:
            raise SpecError(Issue((), f"parameters not in this space: {sorted(unused)}"))
        return spec

    def candidate(self, suggest: Suggest) -> Candidate:
        """Sample, validate shapes and check the constraints with the analytic cost model.

        The spec is normalised once, here: the candidate carries the plan to whatever builds,
        hashes or costs it next."""
        sample = self.sample(suggest)
        try:
            spec = sample.spec(shapes=False)
            plan = normalize(spec, sample.source)
            costs = analytic_costs(plan)
        except SpecError as exc:
            return Candidate(sample, rejected=f"invalid: {exc}")
        violations = self.constraints.violations(costs, plan, self.folder, self.source)
        rejected = "constraints: " + "; ".join(violations) if violations else None
        return Candidate(sample, spec, costs, rejected, violations, plan)

    @property
    def folder(self) -> Path | None:
        """The space file's folder, where a relative latency ``table`` is read from."""
        return Path(self.source.file).parent if self.source.file else None

    def check_tables(self) -> None:
        """Open the latency bound's table now, before a search writes anything: raises
        :class:`SpecError` as :meth:`Constraints.predictor`."""
        self.constraints.predictor(self.folder, self.source)

    def random_samples(self, n: int, seed: int = 0) -> list[Candidate]:
        suggest = RandomSuggest(seed)
        return [self.candidate(suggest) for _ in range(n)]

    def _resolve(
        self, value: Any, path: SpacePath, src: SpacePath, ctx: _Ctx, suggest: Suggest, origins: dict
    ) -> Any:
        origins[path] = src
        if isinstance(value, Choice | IntRange | FloatRange):
            return self._draw(value, path, ctx, suggest, origins)
        if isinstance(value, list):
            return [
                self._resolve(v, (*path, i), (*src, i), self._stage_ctx(ctx, path, i), suggest, origins)
                for i, v in enumerate(value)
            ]
        if not isinstance(value, dict):
            return value
        stage = ctx.stage is not None and path == ("stages", ctx.stage)
        out: dict[str, Any] = {}
        # depths first (per_block draws need them), a stage's depth and mixer before the keys
        # that depend on its family, then the rest in the author's order
        first = ("depths", "depth", "block", "mixer") if stage or not path else ()
        for key in sorted(value, key=lambda k: (first.index(k) if k in first else len(first), k == "stages")):
            if stage and not _applies(key, out, value[key]):
                continue  # e.g. mlp_ratio when the chosen mixer is a bottleneck conv: not drawn
            sub = _Ctx([*ctx.name, key], ctx.stage, ctx.depth)
            child = self._resolve(value[key], (*path, key), (*src, key), sub, suggest, origins)
            if stage and key == "pos_embed" and isinstance(child, bool):
                child = _pos_embed(child, out.get("mixer"))
            out[key] = child
            if key == "depth" and stage and isinstance(child, int):
                ctx.depth = child
            if key == "depths" and not path and isinstance(child, list):
                self._depths = child
        return {k: out[k] for k in value if k in out}  # the author's key order

    def _stage_ctx(self, ctx: _Ctx, path: SpacePath, i: int) -> _Ctx:
        if path == ("stages",):
            depths = self._depths
            depth = depths[i] if isinstance(depths, list) and i < len(depths) else None
            return _Ctx(["stages", str(i)], i, depth if isinstance(depth, int) else None)
        return _Ctx([*ctx.name, str(i)], ctx.stage, ctx.depth)

    def _draw(self, node: Node, path: SpacePath, ctx: _Ctx, suggest: Suggest, origins: dict) -> Any:
        if node.per_block:
            if ctx.depth is None:
                raise self.source.error(
                    node.path,
                    "per_block needs the stage's depth: give the stage a 'depth' or the spec 'depths'",
                )
            head, tail = _block_name(ctx.name, "{}").split("{}")
            names = [f"{head}{b}{tail}" for b in range(ctx.depth)]
            origins.update(dict.fromkeys([(*path, b) for b in range(ctx.depth)], node.path))
            if isinstance(node, Choice) and names:  # plain options (parse_tree checks): no recursion
                indices = [node.labels.index(suggest.categorical(name, node.labels)) for name in names]
                origins[path] = (*node.path, "choice", indices[-1])
                return [node.options[i] for i in indices]
            return [self._draw_one(node, name, path, ctx, suggest, origins) for name in names]
        return self._draw_one(node, ".".join(ctx.name), path, ctx, suggest, origins)

    def _draw_one(
        self, node: Node, name: str, path: SpacePath, ctx: _Ctx, suggest: Suggest, origins: dict
    ) -> Any:
        if isinstance(node, IntRange):
            return suggest.integer(name, node.low, node.high, step=node.step, log=node.log)
        if isinstance(node, FloatRange):
            return suggest.real(name, node.low, node.high, step=node.step, log=node.log)
        label = suggest.categorical(name, node.labels)
        index = node.labels.index(label)
        inner = _Ctx(
            [*ctx.name[:-1], f"{ctx.name[-1]}[{label}]"] if ctx.name else [f"[{label}]"], ctx.stage, ctx.depth
        )
        return self._resolve(
            node.options[index], path, (*node.path, "choice", index), inner, suggest, origins
        )

    # ------------------------------------------------------------------ describing

    def dimensions(self) -> list[Dimension]:
        """Every named draw, with its domain and the choice it depends on."""
        dims: list[Dimension] = []
        self._walk(self.tree, _Ctx([]), None, dims, None)
        return dims

    def _draws(self) -> list[tuple[str, list[Any], dict[str, Any]]]:
        """(name of the first draw, a few of its values, the choices that enable it) per node."""
        out: list[tuple[str, list[Any], dict[str, Any]]] = []
        self._walk(self.tree, _Ctx([]), None, [], out, requires={})
        return out

    def _walk(
        self,
        value: Any,
        ctx: _Ctx,
        condition: str | None,
        dims: list[Dimension],
        draws: list | None,
        requires: dict[str, Any] | None = None,
    ) -> None:
        requires = requires or {}
        if isinstance(value, list):
            for i, v in enumerate(value):
                sub = (
                    _Ctx(["stages", str(i)], i, self._fixed_depth(i))
                    if ctx.name == ["stages"]
                    else _Ctx([*ctx.name, str(i)], ctx.stage, ctx.depth)
                )
                self._walk(v, sub, condition, dims, draws, requires)
            return
        if isinstance(value, dict):
            stage = ctx.stage is not None and ctx.name == ["stages", str(ctx.stage)]
            if stage:
                depth = value.get("depth")
                ctx = _Ctx(
                    ctx.name,
                    ctx.stage,
                    depth if isinstance(depth, int) else ctx.depth if depth is None else None,
                )
            for k, v in value.items():
                sub = _Ctx([*ctx.name, k], ctx.stage, ctx.depth)
                if not stage or k == "mixer":
                    self._walk(v, sub, condition, dims, draws, requires)
                    continue
                mixer = value.get("mixer")
                options = (
                    list(zip(mixer.labels, mixer.options, strict=True))
                    if isinstance(mixer, Choice)
                    else [(None, mixer)]
                )
                users = [label for label, option in options if _applies(k, {**value, "mixer": option}, v)]
                if not users:
                    continue
                if users[0] is None or len(users) == len(options):
                    self._walk(v, sub, condition, dims, draws, requires)
                    continue
                mixer_name = ".".join([*ctx.name, "mixer"])
                when = f"{mixer_name} in {{{', '.join(map(str, users))}}}"
                if condition:
                    when = f"{condition} and {when}"
                self._walk(v, sub, when, dims, draws, {**requires, mixer_name: users[0]})
            return
        if not isinstance(value, Choice | IntRange | FloatRange):
            return
        name = _block_name(ctx.name, "*") if value.per_block else ".".join(ctx.name)
        first = _block_name(ctx.name, 0) if value.per_block else name
        if isinstance(value, Choice):
            kind, domain, count = "categorical", ", ".join(map(str, value.labels)), float(len(value.labels))
            values: list[Any] = list(value.labels)
        elif isinstance(value, IntRange):
            kind, count = "int", float(value.count)
            domain = (
                f"{value.low}..{value.high}"
                + (f" step {value.step}" if value.step != 1 else "")
                + (" log" if value.log else "")
            )
            values = sorted({value.low, value.high})
        else:
            kind, count = "float", value.count
            domain = (
                f"{value.low:g}..{value.high:g}"
                + (f" step {value.step:g}" if value.step else "")
                + (" log" if value.log else "")
            )
            values = sorted({value.low, value.high})
        blocks = ctx.depth if value.per_block else None
        dims.append(Dimension(name, kind, domain, count, blocks, condition, value))
        if draws is not None:
            draws.append((first, values, dict(requires)))
        if isinstance(value, Choice):
            for label, option in zip(value.labels, value.options, strict=True):
                inner = _Ctx([*ctx.name[:-1], f"{ctx.name[-1]}[{label}]"], ctx.stage, ctx.depth)
                self._walk(option, inner, f"{name} = {label}", dims, draws, {**requires, first: label})

    def _fixed_depth(self, stage: int) -> int | None:
        depths = self.tree.get("depths")
        if isinstance(depths, list) and stage < len(depths) and isinstance(depths[stage], int):
            return depths[stage]
        return None

    def size(self) -> int | float:
        """The number of distinct points (``inf`` with a continuous range)."""
        total: int | float = 1
        depths = self.tree.get("depths")
        for key, value in self.tree.items():
            if key == "depths":
                continue
            if key == "stages":
                for i, stage in enumerate(value):
                    outer = depths[i] if isinstance(depths, list) and i < len(depths) else None
                    total *= self._stage_size(stage, outer)
            else:
                total *= _count(value, None)
        return total

    def _stage_size(self, stage: Any, outer_depth: Any) -> int | float:
        if isinstance(stage, Choice | IntRange | FloatRange) or not isinstance(stage, dict):
            return _count(stage, None)
        depth = stage.get("depth", outer_depth)
        rest = {k: v for k, v in stage.items() if k not in ("depth", "mixer")}
        mixer = stage.get("mixer")
        # a per-block mixer choice is counted by _count
        options = list(mixer.options) if isinstance(mixer, Choice) and not mixer.per_block else [mixer]
        total: int | float = 0
        for d in _depth_values(depth):
            for option in options:
                n = _count(option, d)
                for key, value in rest.items():
                    if _applies(key, {**stage, "mixer": option}, value):
                        n *= _count(value, d)
                total += n
        return total


class _Recorder:
    """Pass draws through to ``inner`` and remember them as the sample's parameters."""

    def __init__(self, inner: Suggest, params: dict[str, Any]):
        self.inner, self.params = inner, params

    def categorical(self, name: str, choices: Any) -> Any:
        self.params[name] = value = self.inner.categorical(name, choices)
        return value

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.params[name] = value = self.inner.integer(name, low, high, step=step, log=log)
        return value

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        self.params[name] = value = self.inner.real(name, low, high, step=step, log=log)
        return value


def _mixer_kind(mixer: Any) -> str | None:
    mixer = mixer[0] if isinstance(mixer, list) and mixer else mixer  # a list: block 0's
    kind = mixer if isinstance(mixer, str) else mixer.get("kind") if isinstance(mixer, dict) else None
    return kind if isinstance(kind, str) else None


def _family(stage: Mapping[str, Any]) -> str | None:
    """The block family a (resolved) stage's ``block`` or ``mixer`` gives."""
    block = stage.get("block")
    if isinstance(block, str):
        return block
    kind = _mixer_kind(stage.get("mixer"))
    return MIXER_FAMILY.get(kind) if kind else None


def _applies(key: str, stage: Mapping[str, Any], raw: Any = None) -> bool:
    """Whether a stage key means anything to the stage's family (``mlp_ratio`` does not to a
    bottleneck): in a space, keys that do not apply to the sampled family are left out, and so
    is a ``pos_embed: {choice: [true, false]}`` where the mixer has no position embedding."""
    if key == "pos_embed" and isinstance(raw, Choice) and all(isinstance(o, bool) for o in raw.options):
        kind = _mixer_kind(stage.get("mixer"))
        return kind is None or any(p != "none" for p in MIXER_POS_EMBEDS.get(kind, ()))
    if key not in FAMILY_ONLY_FIELDS:
        return True
    family = _family(stage)
    return family is None or family in FAMILY_ONLY_FIELDS[key][0]


def _pos_embed(on: bool, mixer: Any) -> str:
    """``pos_embed: true`` in a space: the mixer's own position embedding, where it has one."""
    kind = _mixer_kind(mixer)
    options = [p for p in MIXER_POS_EMBEDS.get(kind or "", ("none",)) if p != "none"]
    if not on or not options:
        return "none"
    return "absolute" if "absolute" in options and kind == "attention" else options[0]


def _block_name(name: list[str], block: int | str) -> str:
    """``stages.2.mlp_ratio`` -> ``stages.2.blocks.7.mlp_ratio``."""
    return ".".join([*name[:2], "blocks", str(block), *name[2:]])


def _depth_values(depth: Any) -> list[int | None]:
    if isinstance(depth, int):
        return [depth]
    if isinstance(depth, IntRange):
        return list(range(depth.low, depth.high + 1, depth.step))
    if isinstance(depth, Choice) and all(isinstance(o, int) for o in depth.options):
        return list(depth.options)
    return [None]


def _count(value: Any, depth: int | None) -> int | float:
    if isinstance(value, Choice | IntRange | FloatRange):
        if isinstance(value, Choice):
            one: int | float = sum(_count(o, depth) for o in value.options)
        else:
            one = value.count
        if value.per_block:
            return one ** (depth or 1) if one != math.inf else math.inf
        return one
    if isinstance(value, dict):
        out: int | float = 1
        for v in value.values():
            out *= _count(v, depth)
        return out
    if isinstance(value, list):
        out = 1
        for v in value:
            out *= _count(v, depth)
        return out
    return 1
