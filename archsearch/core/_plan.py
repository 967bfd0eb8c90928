"""The plan types: what normalisation makes of a spec (one flat list of fully resolved blocks).

The compiler, the cost model, the latency tables and the reports read these, never raw specs.
:class:`CheckContext` is how kinds report problems while a spec is normalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import Issue, SpecError
from ._geometry import make_divisible, scalar
from ._yaml import SourceMap

if TYPE_CHECKING:  # the schema sits above this layer
    from ..kinds import Mixer
    from ..spec import Embed, Head, Spec

__all__ = ["BlockPlan", "CheckContext", "FeatureShape", "NormalizedSpec", "Path", "StagePlan"]

#: A YAML path: keys and list indices from the document root.
Path = tuple[str | int, ...]


class FeatureShape(NamedTuple):
    """The feature map between layers: channels x height x width, plus class tokens.

    A named tuple, so that hashing and comparing one (the normaliser's memo keys hold shapes)
    costs no Python call."""

    channels: int
    height: int
    width: int
    cls_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.height * self.width + self.cls_tokens

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def __str__(self) -> str:
        extra = f"+{self.cls_tokens}cls" if self.cls_tokens else ""
        return f"{self.channels}x{self.height}x{self.width}{extra}"


@dataclass(frozen=True)
class BlockPlan:
    """One block, fully resolved: every value a scalar, shapes in and out known."""

    index: int
    """Position in the whole network (0-based)."""
    stage: int
    position: int
    """Position within its stage."""
    family: str
    """Block family (a name in :data:`archsearch.kinds.FAMILIES`)."""
    mixer: Mixer
    """The mixer with per-block lists resolved to this block's values."""
    dim_in: int
    dim: int
    stride: int
    """Spatial stride of the block itself (bottleneck first block under ``embed: block``)."""
    mlp_ratio: float | None
    expansion: int | None
    act: str
    pos_embed: str
    in_shape: FeatureShape
    out_shape: FeatureShape
    drop_path: float
    norm_eps: float
    mlp_dwconv: bool = False
    """Depthwise 3x3 conv in the MLP (PVT v2)."""
    shortcut: str = "conv"
    """A projection shortcut's form (where the block has one): ``conv`` (strided 1x1 conv + BN) or
    ``avg`` (ResNet-D: 2x2 average pool, then 1x1 conv + BN); from ``embed: block``."""
    peg: bool = False
    """The stage's conditional position encoding (PEG) follows this block (its ``peg``)."""

    @property
    def path(self) -> Path:
        return ("stages", self.stage, "blocks", self.position)

    @property
    def kv_stride(self) -> int:
        """This block's key/value stride (1 for mixers without one)."""
        return scalar(getattr(self.mixer, "kv_stride", 1))

    @property
    def q_stride(self) -> int:
        """This block's query stride (1 for mixers without one)."""
        return scalar(getattr(self.mixer, "q_stride", 1))

    @property
    def width(self) -> int:
        """Channels the mixer sees: the bottleneck width, the MBConv hidden width or the
        transformer dim."""
        if self.family == "mbconv":
            assert self.expansion is not None
            return make_divisible(self.dim_in * self.expansion)
        return self.dim // self.expansion if self.expansion else self.dim


@dataclass(frozen=True)
class StagePlan:
    index: int
    family: str
    embed: Embed
    """The embedding with defaults filled in (e.g. ``padding``)."""
    dim: int
    depth: int
    cls_token: bool
    pos_embed: str
    in_shape: FeatureShape
    embed_shape: FeatureShape
    """Shape after the embedding, before the blocks."""
    out_shape: FeatureShape
    reduction: int
    """Total spatial stride from the input to this stage's output."""
    blocks: tuple[BlockPlan, ...]
    norm_out: bool = False
    """LayerNorm on the stage's output tokens (PVT v2)."""
    dist_token: bool = False
    """A distillation token after the class token (DeiT); counted in the shapes' ``cls_tokens``."""


@dataclass(frozen=True)
class NormalizedSpec:
    spec: Spec
    name: str
    input_shape: FeatureShape
    stem_shape: FeatureShape | None
    stages: tuple[StagePlan, ...]
    head: Head
    """The head with ``norm`` resolved to ``"tokens"``, ``"pooled"`` or ``False``."""
    source: SourceMap

    @property
    def blocks(self) -> tuple[BlockPlan, ...]:
        return tuple(b for s in self.stages for b in s.blocks)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def out_shape(self) -> FeatureShape:
        return self.stages[-1].out_shape


class CheckContext:
    """What a kind's normalisation hooks get: the spec being normalised and a place to report
    problems. ``fail`` records an :class:`Issue` at a YAML path (the line comes from ``source``);
    ``raise_issues`` raises them all as one :class:`SpecError`."""

    def __init__(self, spec: Spec, source: SourceMap):
        self.spec = spec
        self.source = source
        self.issues: list[Issue] = []

    def fail(self, path: Path, message: str, **kwargs: Any) -> None:
        """Record a problem at ``path``; ``kwargs``: ``value`` (what was given), ``allowed``."""
        self.issues.append(self.source.issue(path, message, **kwargs))

    def raise_issues(self) -> None:
        """Raise :class:`SpecError` with every recorded problem, if any."""
        if self.issues:
            raise SpecError(self.issues)

    def per_block(self, path: Path, value: Any, depth: int, default: Any) -> list[Any] | None:
        """A stage value as one item per block: a scalar repeated, a list of exactly ``depth``
        items as given (else an issue and ``None``), ``None`` -> ``default`` repeated (or
        ``None`` when there is no default)."""
        if value is None:
            return None if default is None else [default] * depth
        if isinstance(value, list):
            if len(value) != depth:
                self.fail(
                    path, f"a per-block list needs exactly depth={depth} items, one per block", value=value
                )
                return None
            return list(value)
        return [value] * depth
