"""What a kind is: the contract every mixer (and, as they migrate, embedding, stem, family and
head option) implements, and the registry that names them.

A kind owns its schema model, its normalisation (checks and output shape), its module builder,
its analytic cost, its latency-table key and its weight-sharing rule. Registries are built from
one explicit list (:mod:`archsearch.kinds._registry`); nothing registers itself at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from .._errors import Issue, SpecError
from ..core import BlockPlan, CheckContext, Cost, FeatureShape, Path, StagePlan, StrictModel

if TYPE_CHECKING:
    from torch import nn

__all__ = ["FamilyKind", "KindRegistry", "MixerKind", "check_heads", "check_odd_kernel"]


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
    share: Any = None
    """Weight-sharing rule for supernets (one-shot search); ``None``: not defined yet."""

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

    def latency_key(self, block: BlockPlan) -> tuple[Any, ...]:
        """What determines the mixer's latency in a latency table: its kind and resolved fields."""
        mixer = block.mixer
        return (self.name, *(tuple(v) if isinstance(v, list) else v for v in mixer.__dict__.values()))


@dataclass(frozen=True)
class FamilyKind:
    """A block family: the block around a mixer (bottleneck, transformer, ...).

    Today it holds the family's stage rules and defaults; its block builder and cost still live
    in :mod:`archsearch.compiler` and :mod:`archsearch.cost` (to migrate).
    """

    name: str
    act: str
    """Default activation of the family's stages."""
    embeds: tuple[str, ...]
    """Embedding kinds a stage of this family accepts."""
    mlp_ratio: float | None = None
    """Default MLP ratio; ``None``: the family has no MLP (``mlp_ratio`` is not allowed)."""
    expansion: int | None = None
    """Default expansion; ``None``: ``expansion`` is not allowed."""
    stage_fields: tuple[str, ...] = ()
    """Family-only stage flags it accepts, among ``cls_token``, ``mlp_dwconv``, ``norm_out``."""
    width_name: str = "dim"
    """How messages name the channels the mixer sees."""
    bottleneck_width: bool = False
    """The mixer sees ``dim // expansion`` channels (the bottleneck width)."""
    keeps_dim: bool = False
    """Under ``embed: none`` the stage dim must equal the incoming channels."""
    head_norm: Literal[False, "tokens", "pooled"] = False
    """Where the head's LayerNorm goes by default after a last stage of this family."""
    share: Any = None
    """Weight-sharing rule for supernets; ``None``: not defined yet."""


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
