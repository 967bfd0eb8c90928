"""Normalisation: a validated :class:`Spec` -> one flat list of fully resolved blocks.

Every stage is resolved (family, defaults, per-block lists) and the feature shape is carried
through it, so impossible shapes are caught here with the YAML path and line, before any module
is built. The per-kind checks and shapes are the kinds' own (:mod:`archsearch.kinds`); this
driver walks the stages and calls them. The compiler, the cost model and the reports all read
the :class:`NormalizedSpec`.
"""

from __future__ import annotations

from typing import Any

from ..core import (
    MAX_BLOCKS,
    BlockPlan,
    CheckContext,
    FeatureShape,
    NormalizedSpec,
    Path,
    SourceMap,
    StagePlan,
    and_words,
)
from ..kinds import (
    EMBEDS,
    FAMILIES,
    FAMILY_MIXERS,
    FAMILY_ONLY_FIELDS,
    MIXER_FAMILY,
    MIXERS,
    STEMS,
    Mixer,
    resolve_mixers,
)
from ._memo import (
    BLOCK_PLANS,
    HEADS,
    STAGE_HEADS,
    STAGE_PLANS,
    STAGE_SEEN,
    StageHead,
    head_key,
    keep,
    remember,
    stage_keys,
)
from ._parts import StageParts
from ._schema import FAST, PARTS, Head, Spec, Stage

__all__ = ["normalize"]


class _Normalizer(CheckContext):
    # ------------------------------------------------------------------ the whole spec
    def run(self, name: str) -> NormalizedSpec:
        spec = self.spec
        parts = PARTS.parts_of(spec)  # the spec's parts, when it was validated from them
        depths = self.resolve_depths()
        self.raise_issues()
        height, width = spec.input.hw
        shape = FeatureShape(spec.input.channels, height, width)
        input_shape = shape
        stem_shape = None
        if spec.stem is not None:  # stems pad: never empty
            stem_kind = STEMS.get(spec.stem.kind, ("stem", "kind"), self.source)
            shape = stem_shape = stem_kind.shape(spec.stem, input_shape)
        total_blocks = sum(depths)
        stages: list[StagePlan] = []
        first_block = 0
        for i, (stage, depth) in enumerate(zip(spec.stages, depths, strict=True)):
            stage_parts = (parts.top, parts.stages[i]) if parts is not None else None
            plan = self.stage(i, stage, depth, shape, first_block, total_blocks, stage_parts)
            self.raise_issues()  # later stages depend on this one's shape
            assert plan is not None
            stages.append(plan)
            shape = plan.out_shape
            if shape.cls_tokens:
                shape = FeatureShape(shape.channels, shape.height, shape.width)
            first_block += depth
        head = self.head(stages[-1], parts.top if parts is not None else None)
        self.raise_issues()
        return NormalizedSpec(spec, name, input_shape, stem_shape, tuple(stages), head, self.source)

    def resolve_depths(self) -> list[int]:
        spec = self.spec
        if spec.depths is not None and len(spec.depths) != len(spec.stages):
            n = len(spec.stages)
            self.fail(
                ("depths",),
                f"needs one depth per stage: {n} stage{'s' if n != 1 else ''}, "
                f"{len(spec.depths)} depth{'s' if len(spec.depths) != 1 else ''}",
                value=spec.depths,
            )
            return []
        depths = []
        for i, stage in enumerate(spec.stages):
            given = spec.depths[i] if spec.depths is not None else None
            if stage.depth is not None and given is not None:
                self.fail(
                    ("stages", i, "depth"),
                    "depth is given both here and in the spec's 'depths'",
                    value=stage.depth,
                )
            elif stage.depth is None and given is None:
                self.fail(("stages", i), "missing 'depth' (give it here or as the spec's 'depths' list)")
            depths.append(stage.depth or given or 0)
            if sum(depths) > MAX_BLOCKS:  # before any block is unrolled
                where = ("stages", i, "depth") if stage.depth is not None else ("depths", i)
                self.fail(
                    where,
                    f"the stages up to this one hold {sum(depths):,} blocks, more than the "
                    f"{MAX_BLOCKS:,} a network may hold",
                    value=depths[-1],
                    allowed=f"at most {MAX_BLOCKS:,} blocks in all stages together",
                )
                return []
        return depths

    # ------------------------------------------------------------------ one stage
    def stage(
        self,
        i: int,
        stage: Stage,
        depth: int,
        shape: FeatureShape,
        first_block: int,
        total_blocks: int,
        parts: tuple[int, StageParts] | None = None,
    ) -> StagePlan | None:
        """The plan of stage ``i``, or ``None`` after reporting why there is none. Memoised
        (:mod:`archsearch.spec._memo`): the whole plan, else the part before the blocks, and
        each block; only results without issues are stored. ``parts``: the spec's top-level part
        and the stage's parts, when known (:mod:`archsearch.spec._parts`)."""
        keys = stage_keys(self.spec, i, stage, depth, shape, first_block, total_blocks, parts)
        found = STAGE_PLANS.get(keys.plan)
        if found is not None:
            return found
        head = STAGE_HEADS.get(keys.head)
        if head is None:
            head = self.stage_head(i, stage, depth, shape)
            if head is None:
                return None
            keep(STAGE_HEADS, keys.head, head)
        plan = self.stage_blocks(i, stage, depth, shape, first_block, total_blocks, keys.token, head)
        if plan is not None and not self.issues:
            remember(STAGE_PLANS, STAGE_SEEN, keys.plan, plan)
        return plan

    def stage_head(self, i: int, stage: Stage, depth: int, shape: FeatureShape) -> StageHead | None:
        """The stage-level checks and what the stage resolves to before its blocks."""
        path: Path = ("stages", i)
        mixed = isinstance(stage.mixer, list)  # one mixer per block (kinds/_mixed.py)
        first = _first(stage.mixer)
        mixer_kind = MIXERS.get(first.kind, (*path, "mixer", *((0,) if mixed else ()), "kind"), self.source)
        family_name: str
        if stage.block is not None:
            family_name = stage.block
            if not mixed and mixer_kind.name not in FAMILY_MIXERS[family_name]:
                self.fail(
                    (*path, "mixer", "kind"),
                    f"mixer {mixer_kind.name!r} does not fit a {family_name} block",
                    value=mixer_kind.name,
                    allowed=", ".join(FAMILY_MIXERS[family_name]),
                )
                return None
        else:
            family_name = MIXER_FAMILY[mixer_kind.name]
        family = FAMILIES.get(family_name, (*path, "block"), self.source)

        self.check_family_fields(path, stage, family_name)
        if stage.embed.kind not in family.embeds:
            self.fail(
                (*path, "embed", "kind"),
                f"embedding {stage.embed.kind!r} does not fit a {family_name} stage",
                value=stage.embed.kind,
                allowed=", ".join(family.embeds),
            )
        named = stage.block is not None
        mixers = resolve_mixers(self, path, stage, depth, family_name, named) if mixed else None
        pos_allowed = mixer_kind.pos_embeds
        pos_embed = stage.pos_embed or pos_allowed[0]
        if not mixed and pos_embed not in pos_allowed:
            self.fail(
                (*path, "pos_embed"),
                f"position embedding {pos_embed!r} does not fit mixer {mixer_kind.name!r}",
                value=pos_embed,
                allowed=", ".join(pos_allowed),
            )
        # the per-block checks (stage_blocks reads the values again)
        self.per_block((*path, "mlp_ratio"), stage.mlp_ratio, depth, family.mlp_ratio)
        if not mixed:
            mixer_kind.per_block_values(self, path, stage, depth)
        if self.issues:
            return None

        act = stage.act or family.act
        epath = (*path, "embed")
        embed_kind = EMBEDS.get(stage.embed.kind, (*epath, "kind"), self.source)
        embed, embed_shape, block_stride = embed_kind.normalize(self, epath, stage, family, shape, act)
        if embed_shape is None:
            return None
        if stage.peg is not None and stage.peg >= depth:
            self.fail(
                (*path, "peg"),
                f"the position encoding goes after block {stage.peg}, but this stage has {depth} "
                f"block{'s' if depth != 1 else ''}",
                value=stage.peg,
                allowed=f"0 to {depth - 1} (0: after the first block, as CPVT and Twins)",
            )
            return None
        if stage.dist_token and not stage.cls_token:
            self.fail(
                (*path, "dist_token"),
                "the distillation token goes after a class token, but this stage has none",
                value=True,
                allowed="cls_token: true with it (or dist_token: false)",
            )
            return None
        cls_tokens = (1 if stage.cls_token else 0) + (1 if stage.dist_token else 0)
        embed_shape = FeatureShape(embed_shape.channels, embed_shape.height, embed_shape.width, cls_tokens)
        expansion = (stage.expansion or family.expansion) if family.expansion is not None else None
        if expansion and family.bottleneck_width and stage.dim % expansion:
            self.fail(
                (*path, "expansion"),
                f"expansion {expansion} does not divide dim {stage.dim}",
                value=expansion,
            )
            return None
        width = stage.dim // expansion if expansion and family.bottleneck_width else stage.dim
        if mixers is None:
            mixer_kind.check(self, (*path, "mixer"), stage.mixer, width, family.width_name)
        else:
            for j, item in enumerate(stage.mixer):
                if item not in stage.mixer[:j]:  # equal items are checked once
                    mixers[j].kind.check(self, (*path, "mixer", j), item, width, family.width_name)
        if self.issues:
            return None
        if mixed:  # no stage-level hooks (kinds/_mixed.py)
            stage_mixer, current = first, embed_shape
        else:
            stage_mixer, current = mixer_kind.prepare(first, stage.dim, embed_shape)
        return StageHead(
            family_name, family, mixer_kind, pos_embed, act, embed, embed_shape, block_stride, expansion,
            stage_mixer, current, mixers,
        )  # fmt: skip

    def stage_blocks(
        self,
        i: int,
        stage: Stage,
        depth: int,
        shape: FeatureShape,
        first_block: int,
        total_blocks: int,
        token: int,
        head: StageHead,
    ) -> StagePlan | None:
        """The blocks of a stage whose stage-level checks passed (``head``), and the stage plan;
        ``token`` identifies the stage and its context in the block memo's keys."""
        path: Path = ("stages", i)
        family, mixer_kind, current = head.family, head.mixer_kind, head.first_shape
        mlp_ratios = self.per_block((*path, "mlp_ratio"), stage.mlp_ratio, depth, family.mlp_ratio)
        mixer_values = {} if head.mixers else mixer_kind.per_block_values(self, path, stage, depth)
        names = tuple([name for name, vals in mixer_values.items() if vals is not None])
        per_block = list(zip(*[mixer_values[name] for name in names], strict=True)) if names else [()] * depth
        if mlp_ratios is None:
            mlp_ratios = [None] * depth
        blocks: list[BlockPlan] = []
        shapes: dict[tuple[Any, ...], FeatureShape | None] = {}  # blocks alike share their shape
        known = BLOCK_PLANS.get
        stride = head.block_stride
        for j in range(depth):
            values, mlp_ratio = per_block[j], mlp_ratios[j]
            block_key = (token, j, values, mlp_ratio, current, stride)
            block = known(block_key)
            if block is None:
                made = self.block(i, stage, j, head, names, values, current, stride, shapes)
                if made is None:
                    return None
                mixer, out = made
                index = first_block + j
                pos_embed = head.mixers[j].pos_embed if head.mixers else head.pos_embed
                block = BlockPlan(
                    index=index,
                    stage=i,
                    position=j,
                    family=head.family_name,
                    mixer=mixer,
                    dim_in=current.channels,
                    dim=out.channels,
                    stride=stride,
                    mlp_ratio=mlp_ratio,
                    expansion=head.expansion,
                    act=head.act,
                    pos_embed=pos_embed,
                    in_shape=current,
                    out_shape=out,
                    drop_path=self.spec.drop_path * index / max(total_blocks - 1, 1),
                    norm_eps=self.spec.norm_eps,
                    mlp_dwconv=stage.mlp_dwconv,
                    shortcut=getattr(head.embed, "shortcut", "conv") if j == 0 else "conv",
                    peg=stage.peg == j,
                )
                if not self.issues:
                    keep(BLOCK_PLANS, block_key, block)
            blocks.append(block)
            current = block.out_shape
            stride = 1
        current = mixer_kind.stage_out(stage.dim, head.embed_shape, current)
        return StagePlan(  # positional: one is made per stage not memoised (index, family, embed, dim,
            # depth, cls_token, pos_embed, in_shape, embed_shape, out_shape, reduction, blocks, norm_out)
            i, head.family_name, head.embed, stage.dim, depth, stage.cls_token, head.pos_embed, shape,
            head.embed_shape, current, max(1, round(self.spec.input.hw[0] / current.height)), tuple(blocks),
            stage.norm_out, dist_token=stage.dist_token,
        )  # fmt: skip

    def block(
        self,
        i: int,
        stage: Stage,
        j: int,
        head: StageHead,
        names: tuple[str, ...],
        values: tuple[Any, ...],
        current: FeatureShape,
        stride: int,
        shapes: dict[tuple[Any, ...], FeatureShape | None],
    ) -> tuple[Mixer, FeatureShape] | None:
        """Block ``j``'s mixer (the stage's with the block's per-block ``values`` of fields
        ``names``) and output shape (``None`` after reporting why there is none)."""
        mpath: Path = ("stages", i, "mixer")
        mixer, kind = head.mixer, head.mixer_kind
        if head.mixers:
            kind, mixer, _ = head.mixers[j]
            mpath = (*mpath, j)
        elif names:
            mixer = _mixer_for_block(mixer, tuple(zip(names, values, strict=True)))
        shape_key = (id(mixer), stride, current)
        out = shapes.get(shape_key)
        if out is None:
            out = shapes[shape_key] = kind.block_shape(self, mpath, j, mixer, stride, stage.dim, current)
        return None if out is None else (mixer, out)

    def check_family_fields(self, path: Path, stage: Stage, family: str) -> None:
        for name, (owners, unset) in FAMILY_ONLY_FIELDS.items():
            value = getattr(stage, name)
            if family not in owners and value != unset:
                self.fail(
                    (*path, name),
                    f"{name} applies to {and_words(owners)} stages, but this stage is a {family} "
                    f"stage (mixer {_first(stage.mixer).kind!r})",
                    value=value,
                )

    # ------------------------------------------------------------------ head
    def head(self, last: StagePlan, top: int | None = None) -> Head:
        """The head with ``norm`` resolved after the last stage (memoised like stages; ``top``:
        the spec's top-level part, when known)."""
        head = self.spec.head
        key = head_key(head, last, top)
        found = HEADS.get(key)
        if found is not None:
            return found
        resolved = self.resolve_head(head, last)
        if not self.issues:
            keep(HEADS, key, resolved)
        return resolved

    def resolve_head(self, head: Head, last: StagePlan) -> Head:
        if head.pool == "cls" and not last.cls_token:
            self.fail(
                ("head", "pool"),
                "pool 'cls' needs a class token in the last stage (cls_token: true)",
                value="cls",
                allowed="avg, or cls_token: true in the last stage",
            )
        if head.conv is not None and head.pool == "cls":
            self.fail(
                ("head", "conv"),
                "the final conv works on the map, but pool 'cls' takes the class token",
                value=head.conv,
                allowed="pool: avg with a conv, or no conv",
            )
        family_norm = FAMILIES.get(last.family).head_norm
        norm: bool | str = head.norm if head.norm is not None else bool(family_norm)
        if norm is True:
            norm = family_norm or "tokens"
        if norm and head.pool == "cls":
            norm = "tokens"  # the class token is the only token: both placements are the same
        return head.model_copy(update={"norm": norm})


def _first(mixer: Any) -> Any:
    """A stage's mixer, or block 0's where it gives one per block."""
    return mixer[0] if isinstance(mixer, list) else mixer


_MIXERS: dict[tuple[Any, ...], Mixer] = {}


def _mixer_key(mixer: Mixer) -> tuple[Any, ...]:
    return (type(mixer), *((k, tuple(v) if isinstance(v, list) else v) for k, v in mixer.__dict__.items()))


def _mixer_for_block(mixer: Mixer, values: tuple[tuple[str, Any], ...]) -> Mixer:
    """The stage's mixer with one block's per-block values, shared between blocks and specs
    (mixers are frozen); normalising a search's candidates copies each variant once."""
    key = (*_mixer_key(mixer), values)
    found = _MIXERS.get(key)
    if found is None:
        if len(_MIXERS) > 4096:
            _MIXERS.clear()
        found = _MIXERS[key] = mixer.model_copy(update=dict(values))
    return found


def normalize(spec: Spec, source: SourceMap | None = None, name: str | None = None) -> NormalizedSpec:
    """Resolve ``spec`` into stages and blocks with shapes; raise :class:`SpecError` (every
    problem with its YAML path and line) if the network is impossible, and ``TypeError`` for
    anything but a :class:`Spec` (a zoo name, a path or a dict: :func:`archsearch.load_spec`
    makes the Spec; ``normalize("deit-ti")`` was an ``AttributeError`` deep inside)."""
    return FAST.normalize(spec, source, name, _normalize)


def _normalize(spec: Spec, source: SourceMap | None, name: str | None) -> NormalizedSpec:
    """The general path (the fast one takes only specs it validated itself, so anything that is
    not a Spec comes here, and is refused here, off the fast path)."""
    if not isinstance(spec, Spec):
        raise TypeError(
            f"normalize takes a Spec, not a {type(spec).__name__} ({spec!r:.60}); allowed: "
            "archsearch.normalize(archsearch.load_spec(...)) for a zoo name, a YAML path or a dict"
        )
    source = source or getattr(spec, "_source", None) or SourceMap()
    return _Normalizer(spec, source).run(name or spec.name or "spec")
