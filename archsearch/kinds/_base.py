"""What a kind is: the contract every mixer (and, as they migrate, embedding, stem, family and
head option) implements, and the registry that names them.

A kind owns its schema model, its normalisation (checks and output shape), its module builder,
its analytic cost, its latency-table key and its weight-sharing rule. Registries are built from
one explicit list (:mod:`archsearch.kinds._registry`); nothing registers itself at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ..core import BlockPlan, CheckContext, Cost, FeatureShape, NormalizedSpec, Path, StagePlan, StrictModel
from ..errors import Issue, SpecError
from ._share import Share

if TYPE_CHECKING:
    from torch import nn

    from ..ops import BuildMixer

__all__ = [
    "CostMixer",
    "EmbedKind",
    "FamilyKind",
    "KindRegistry",
    "MixerKind",
    "OddKernelMixer",
    "Share",
    "StemKind",
    "check_heads",
    "check_norm_first",
    "check_odd_kernel",
    "check_se",
    "check_strides_fit",
    "omit_defaults",
]


class MixerKind:
    """A token mixer: the part of a block that mixes information across positions.

    Subclass it in one module per mixer (``kinds/_mixer_<name>.py``), set the class attributes
    and implement :meth:`block_shape`, :meth:`build` and :meth:`cost`; the other hooks have
    defaults. One instance goes into ``MIXERS`` in :mod:`archsearch.kinds._registry`.

    Contract of the normalisation hooks (the normaliser memoises stage plans, the part of a stage
    before its blocks, and block plans on it; see :mod:`archsearch.spec._memo`):

    * pure: a result depends only on the arguments, the stage model (field values and which fields
      were given) and, through ``ctx.spec``, the spec's ``drop_path``, ``norm_eps`` and input
      size; a hook that needs another spec-level value adds it to the context in
      ``spec._memo.stage_keys`` (one place). ``ctx.spec`` may be read freely to word an error.
    * stage-level hooks (:meth:`check`, :meth:`per_block_values`, :meth:`prepare`) see a
      per-block list (:attr:`per_block_fields`, the stage's ``mlp_ratio``) only as its length or
      its set of values (``any(v > 1 ...)``); whatever depends on a block's position is checked
      per block in :meth:`block_shape`.
    * a hook that reports an issue may return anything: results with issues are never stored.
    """

    name: str
    """The ``kind`` in YAML; must equal the schema's ``kind`` literal."""
    schema: type[StrictModel]
    """The pydantic model of ``mixer: {kind: <name>, ...}``; its docstring and field docstrings
    are the docs (``archsearch schema --markdown``)."""
    family: str
    """The block family this mixer lives in (and that a stage without ``block`` gets)."""
    pos_embeds: tuple[str, ...] = ("none",)
    """Position embeddings the mixer accepts; the first is the default."""
    per_block_fields: tuple[str, ...] = ()
    """Mixer fields that may be a list of one value per block."""
    share: Share = Share()
    """Weight-sharing rule for supernets (one-shot search, :class:`Share`); the default makes
    every field structural (one set of weights per value)."""

    # ------------------------------------------------------------------ normalisation
    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        """Cross-field checks of the stage's mixer; report with ``ctx.fail``. ``width`` is the
        channels the mixer sees (named ``what`` in messages: "dim", "bottleneck width", ...)."""

    def per_block_values(self, ctx: CheckContext, path: Path, stage: Any, depth: int) -> dict[str, Any]:
        """Field -> one value per block (``None``: an issue was reported) for the fields that
        vary per block; ``path`` is the stage's. Default: :attr:`per_block_fields`."""
        return {
            name: ctx.per_block((*path, "mixer", name), getattr(stage.mixer, name), depth, None)
            for name in self.per_block_fields
        }

    def prepare(self, mixer: Any, dim: int, shape: FeatureShape) -> tuple[Any, FeatureShape]:
        """The stage's mixer with stage-level defaults filled in, and the shape its first block
        sees (``shape``: after the embedding; ``dim``: the stage dim)."""
        return mixer, shape

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        """The output shape of block ``j`` (its input ``shape``, its own spatial ``stride``), or
        ``None`` after reporting why the block cannot run on that shape."""
        raise NotImplementedError

    def stage_out(self, dim: int, embed_shape: FeatureShape, last: FeatureShape) -> FeatureShape:
        """The stage's output shape given its last block's (default: that one)."""
        return last

    # ------------------------------------------------------------------ builder and costs
    def build(self, block: BlockPlan) -> nn.Module:
        """The mixer module of one block, built from its plan alone; the family block calls this
        where the mixer sits (so parameters are created, and seeded, in a fixed order)."""
        raise NotImplementedError

    def cost(self, block: BlockPlan, cost: Cost) -> None:
        """Add the mixer's parameters, MACs and activations (fvcore's conventions) to ``cost``."""
        raise NotImplementedError

    def stage_cost(self, stage: StagePlan, cost: Cost) -> None:
        """Add what the mixer costs once per stage, outside its blocks (default: nothing)."""

    def fixed_size(self, block: BlockPlan) -> str | None:
        """What the block's mixer holds that is made for the map it is built on (a table of
        relative positions, a window layout), as words that complete "stages[i].mixer: <kind>
        ...", or ``None`` where the mixer runs on a map of any size (the default). A model with
        such a block raises ``ValueError`` on an input of another size unless it is built with
        ``dynamic_size: true``, when the module itself adapts (and must then support it)."""
        return None

    def canonical(self, data: dict[str, Any], stage: StagePlan) -> dict[str, Any]:
        """The stage's mixer as plain data (``model_dump(mode="json")``) with what normalisation
        resolved written in (per-block values as lists, defaults taken from the stage), for
        :func:`archsearch.spec.spec_hash`: two mixers that build the same modules must give the
        same data. Default: ``data`` as it is."""
        return data

    def latency_key(self, block: BlockPlan) -> tuple[Any, ...]:
        """What determines the mixer's latency in a latency table: its kind and resolved fields."""
        mixer = block.mixer
        return (self.name, *(tuple(v) if isinstance(v, list) else v for v in mixer.__dict__.values()))


#: Adds a block's mixer cost to a :class:`Cost` (the mixer kind's ``cost``).
CostMixer = Callable[[BlockPlan, Cost], None]


class FamilyKind:
    """A block family: the block around a mixer (bottleneck, transformer, ...) and the stage that
    holds those blocks.

    Subclass it in one module per family (``kinds/_family_<name>.py``), set the class attributes
    and implement :meth:`block`, :meth:`stage` and :meth:`cost`. One instance goes into
    ``FAMILIES`` in :mod:`archsearch.kinds._registry`.
    """

    name: str
    """The ``block`` in YAML."""
    act: str
    """Default activation of the family's stages."""
    embeds: tuple[str, ...]
    """Embedding kinds a stage of this family accepts."""
    mlp_ratio: float | None = None
    """Default MLP ratio; ``None``: the family has no MLP (``mlp_ratio`` is not allowed)."""
    expansion: int | None = None
    """Default expansion; ``None``: ``expansion`` is not allowed."""
    stage_fields: tuple[str, ...] = ()
    """Family-only stage fields it accepts, among ``cls_token``, ``dist_token``, ``mlp_dwconv``,
    ``norm_out``, ``peg``."""
    width_name: str = "dim"
    """How messages name the channels the mixer sees."""
    bottleneck_width: bool = False
    """The mixer sees ``dim // expansion`` channels (the bottleneck width)."""
    keeps_dim: bool = False
    """Under ``embed: none`` the stage dim must equal the incoming channels."""
    head_norm: Literal[False, "tokens", "pooled"] = False
    """Where the head's LayerNorm goes by default after a last stage of this family."""
    share: Share = Share(
        nested=("dim", "mlp_ratio", "expansion"),
        reuse=("stride",),
        source="AutoFormer weight entanglement / OFA elastic width; act and mlp_dwconv: one set per option",
    )
    """Elastic width by default: a block's widths are the leading slices of the widest (the
    covering members of a supernet take a stage's ``dim`` at its largest whatever the family)."""
    """Weight-sharing rule for supernets (:class:`Share`), over the block's ``act``,
    ``mlp_dwconv``, ``dim``, ``mlp_ratio``, ``expansion`` and ``stride``."""

    def block(self, plan: BlockPlan, build_mixer: BuildMixer) -> nn.Module:
        """One block built from its plan; it calls ``build_mixer(plan)`` where its mixer sits (so
        parameters are created, and seeded, in a fixed order)."""
        raise NotImplementedError

    def stage(self, plan: StagePlan, embed: nn.Module, blocks: list[nn.Module]) -> nn.Module:
        """The stage module: ``(map (B, C, H, W), class tokens or None) -> (map, class tokens or
        None)`` around the built embedding and blocks."""
        raise NotImplementedError

    def cost(self, block: BlockPlan, cost_mixer: CostMixer) -> Cost:
        """Parameters, MACs and activations of one block (fvcore's conventions, as
        :func:`archsearch.cost.count_traced` counts the built block); ``cost_mixer(block, cost)``
        adds the mixer's part."""
        raise NotImplementedError

    def stage_cost(self, stage: StagePlan, cost: Cost) -> None:
        """Add what the family's stage costs outside its embedding and blocks (default: nothing)."""


K = TypeVar("K")


class KindRegistry(Generic[K]):
    """Name -> kind, in registration order. Looking up an unknown name raises :class:`SpecError`
    listing the known ones."""

    def __init__(self, what: str, kinds: Iterable[tuple[str, K]]):
        self.what = what
        self._items: dict[str, K] = {}
        for name, kind in kinds:
            if name in self._items:
                raise ValueError(f"{what} {name!r} is registered twice")
            self._items[name] = kind

    def get(self, name: str, path: Path = (), source: Any = None) -> K:
        """The kind called ``name``; ``path``/``source`` place the error on the YAML."""
        try:
            return self._items[name]
        except KeyError:
            issue = Issue(path, f"unknown {self.what} {name!r}", allowed=", ".join(self._items))
            if source is not None:
                issue = source.issue(path, issue.message, allowed=issue.allowed)
            raise SpecError(issue) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def values(self) -> tuple[K, ...]:
        return tuple(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------- stems and embeddings


class StemKind:
    """A stem: the layers between the image and the first stage (``spec.stem``).

    Subclass it in one module per stem (``kinds/_stem_<name>.py``) and implement :meth:`shape`,
    :meth:`build` and :meth:`cost`. One instance goes into ``STEMS`` in
    :mod:`archsearch.kinds._registry`.
    """

    name: str
    """The ``kind`` in YAML; must equal the schema's ``kind`` literal."""
    schema: type[StrictModel]
    """The pydantic model of ``stem: {kind: <name>, ...}``; its docstrings are the docs."""
    share: Share = Share()
    """Weight-sharing rule for supernets (one-shot search, :class:`Share`); the default makes
    every field structural (one set of weights per value)."""

    def shape(self, stem: Any, input_shape: FeatureShape) -> FeatureShape:
        """The ``(channels, height, width)`` the stem hands the first stage. Stems pad so that
        every image leaves a non-empty map: this never fails."""
        raise NotImplementedError

    def build(self, stem: Any, c_in: int) -> nn.Module:
        """The stem module: ``(B, c_in, H, W)`` -> ``(B, channels, H', W')`` (:meth:`shape`)."""
        raise NotImplementedError

    def cost(self, plan: NormalizedSpec, cost: Cost) -> None:
        """Add the stem's parameters, MACs and activations (fvcore's conventions) to ``cost``."""
        raise NotImplementedError

    def canonical(self, data: dict[str, Any]) -> dict[str, Any]:
        """The stem as plain data for :func:`archsearch.spec.spec_hash` (see
        :meth:`MixerKind.canonical`). Default: ``data`` as it is."""
        return data

    def latency_key(self, stem: Any, input_shape: FeatureShape) -> tuple[Any, ...]:
        """What determines the stem's latency in a latency table: its fields and the input."""
        return (self.name, *stem.__dict__.values(), input_shape)


class EmbedKind:
    """A token embedding / downsampling step at the start of a stage (``stages[i].embed``).

    Subclass it in one module per embedding (``kinds/_embed_<name>.py``) and implement
    :meth:`normalize`, :meth:`build` and :meth:`cost`. One instance goes into ``EMBEDS`` in
    :mod:`archsearch.kinds._registry`; which families accept it is the family's ``embeds``.
    """

    name: str
    """The ``kind`` in YAML; must equal the schema's ``kind`` literal."""
    schema: type[StrictModel]
    """The pydantic model of ``embed: {kind: <name>, ...}``; its docstrings are the docs."""
    share: Share = Share()
    """Weight-sharing rule for supernets (one-shot search, :class:`Share`); the default makes
    every field structural (one set of weights per value)."""

    def normalize(
        self, ctx: CheckContext, epath: Path, stage: Any, family: FamilyKind, shape: FeatureShape, act: str
    ) -> tuple[Any, FeatureShape | None, int]:
        """The stage's embedding with defaults filled in, the shape after it (``None`` after
        reporting why there is none) and the stride the stage's first block takes over
        (``embed: block``; else 1). ``epath`` is the embedding's YAML path, ``stage`` the
        :class:`~archsearch.spec.Stage`, ``family`` its block family, ``shape`` the incoming map
        and ``act`` the stage's resolved activation."""
        raise NotImplementedError

    def build(self, embed: Any, c_in: int, dim: int, eps: float) -> nn.Module:
        """The embedding module: ``(B, c_in, H, W)`` -> ``(B, dim, H', W')``; ``eps``: the
        spec's ``norm_eps``."""
        raise NotImplementedError

    def cost(self, stage: StagePlan, c_in: int, cost: Cost) -> None:
        """Add the embedding's parameters, MACs and activations (fvcore's conventions) to
        ``cost``; ``c_in``: the incoming channels. Class tokens and position tables are the
        stage's, not the embedding's."""

    def canonical(self, data: dict[str, Any]) -> dict[str, Any]:
        """The resolved embedding as plain data for :func:`archsearch.spec.spec_hash` (see
        :meth:`MixerKind.canonical`). Default: ``data`` as it is."""
        return data

    def latency_key(self, stage: StagePlan, c_in: int) -> tuple[Any, ...]:
        """What determines the embedding's latency in a latency table."""
        embed = stage.embed
        return (
            self.name,
            *(tuple(v) if isinstance(v, list) else v for v in embed.__dict__.values()),
            c_in,
            stage.dim,
            stage.in_shape,
        )


class OddKernelMixer(MixerKind):
    """A mixer that keeps the map: an odd ``kernel``, padded ``kernel // 2``, stride 1 (ConvNeXt's
    depthwise conv, PoolFormer's pooling). Its schema has a ``kernel`` field."""

    def check(self, ctx: CheckContext, mpath: Path, mixer: Any, width: int, what: str) -> None:
        check_odd_kernel(ctx, mpath, mixer.kernel)

    def block_shape(
        self, ctx: CheckContext, mpath: Path, j: int, mixer: Any, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        return FeatureShape(dim, shape.height, shape.width, shape.cls_tokens)


# --------------------------------------------------------------------------- shared checks


def check_odd_kernel(ctx: CheckContext, mpath: Path, kernel: int) -> None:
    """A kxk conv padded ``kernel // 2`` keeps the map only for odd kernels."""
    if kernel % 2 == 0:
        ctx.fail(
            (*mpath, "kernel"),
            "the kernel must be odd: with padding kernel // 2 an even kernel changes the map "
            "size and the residual would not match",
            value=kernel,
            allowed="odd kernels: 1, 3, 5, 7, ...",
        )


def check_heads(ctx: CheckContext, mpath: Path, heads: int, width: int, what: str) -> None:
    """Attention heads must divide the width they split."""
    if width % heads:
        ctx.fail(
            (*mpath, "heads"),
            f"heads must divide the {what} {width}",
            value=heads,
            allowed=", ".join(str(d) for d in range(1, width + 1) if width % d == 0),
        )


def check_strides_fit(
    ctx: CheckContext,
    mpath: Path,
    j: int,
    strides: dict[str, int],
    shape: FeatureShape,
    why: str | Callable[[str, int], str],
) -> bool:
    """Each of block ``j``'s ``strides`` (field -> value) at most the smaller side of the map it
    sees: a larger stride has only the first row and column to sample. The issue points at the
    block's item where the stage gave a per-block list (``mixer.kv_stride[3]``) and says ``why``
    it matters (a text, or a function of the field at fault and its value that returns one).
    ``False`` after reporting one."""
    h, w = shape.height, shape.width
    for name, value in strides.items():
        if value <= min(h, w):
            continue
        stage_mixer = ctx.spec.stages[mpath[1]].mixer  # type: ignore[index]
        if isinstance(stage_mixer, list):  # a mixed stage: this block's own mixer
            stage_mixer = stage_mixer[j]
        at = (*mpath, name, j) if isinstance(getattr(stage_mixer, name), list) else (*mpath, name)
        ctx.fail(
            at,
            f"{name} {value} is larger than the {h}x{w} token map block {j} sees, "
            f"so {why if isinstance(why, str) else why(name, value)}",
            value=value,
            allowed=f"at most {min(h, w)}",
        )
        return False
    return True


def check_norm_first(ctx: CheckContext, epath: Path, embed: Any) -> bool:
    """``norm_first`` needs a norm to put first (conv and patch embeddings); ``False`` after
    reporting that it has none."""
    if embed.norm_first and embed.norm == "none":
        ctx.fail(
            (*epath, "norm_first"),
            "norm_first puts the norm before the conv, but this embedding has no norm",
            value=True,
            allowed="norm: layer or batch (or norm_first: false)",
        )
        return False
    return True


def check_se(ctx: CheckContext, mpath: Path, se: float | None, c_in: int) -> bool:
    """A squeeze-excitation reduces to ``round(se * c_in)`` channels (the block's input
    channels): at least one. ``False`` after reporting that it has none."""
    if se is not None and round(se * c_in) < 1:
        ctx.fail(
            (*mpath, "se"),
            f"squeeze-excitation reduces to round(se x {c_in} input channels) = 0 channels",
            value=se,
            allowed=f"more than {0.5 / c_in:.3g} for {c_in} input channels",
        )
        return False
    return True


def omit_defaults(data: dict[str, Any], schema: type[StrictModel], names: tuple[str, ...]) -> dict[str, Any]:
    """``data`` (a dumped model) without the fields ``names`` where they hold the schema's default:
    for :meth:`MixerKind.canonical`, so fields added to a kind later leave the hashes of specs that
    do not use them as they were."""
    fields = schema.model_fields
    return {k: v for k, v in data.items() if not (k in names and v == fields[k].default)}
