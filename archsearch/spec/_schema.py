"""The spec schema: typed, strict, discriminated on ``kind``, self-documenting.

Every model forbids unknown keys (listing the allowed ones), takes no type coercion (``"3"`` is
not a depth) and is frozen, so a validated spec can be hashed and shared. Per-field checks live
here; checks that need several fields or the running feature shape live in
:mod:`archsearch.spec._normalize`, which every consumer goes through.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, PrivateAttr, model_validator

from ..core import (
    MAX_CLASSES,
    MAX_DEPTH,
    MAX_LIST,
    Act,
    Depth,
    InputSide,
    PerBlockFloat,
    PositiveInt,
    StrictModel,
    shorthand_kind,
)
from ..kinds import MIXERS, Embed, FamilyName, Mixer, NoEmbed, Stem
from ._fast import FastPath
from ._parts import PartsMemo

__all__ = [
    "FAST",
    "PARTS",
    "STAGE_PER_BLOCK_FIELDS",
    "Head",
    "InputSpec",
    "Spec",
    "Stage",
]

# --------------------------------------------------------------------------- input


class InputSpec(StrictModel):
    """The image the network takes."""

    size: InputSide | Annotated[list[InputSide], Field(min_length=2, max_length=2)] = 224
    """Side of a square image, or ``[height, width]``: the size the model is built and costed for
    (other sizes: the spec's ``dynamic_size``)."""
    channels: PositiveInt = 3
    """Colour channels."""

    @property
    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else (self.size[0], self.size[1])


# --------------------------------------------------------------------------- stages and head


def _mixer_description() -> str:
    names = [f"``{name}``" for name in MIXERS.names()]
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return (
        f"Token mixer: {listed} (a bare string is short for ``{{kind: ...}}``); a list of "
        "``depth`` mixers gives one per block (all of the stage's family; Twins' alternating local "
        "and global attention, BoTNet's conv and MHSA blocks in one stage)."
    )


class Stage(StrictModel):
    """A token embedding / downsampling step followed by ``depth`` blocks of one family.

    The family follows from the mixer (``conv``/``mhsa``: ``bottleneck``; ``attention``/``window``:
    ``transformer``; ``dwconv``: ``convnext``; ``mbconv``: ``mbconv``; ``mobilevit``: ``mobilevit``,
    whose blocks are the transformer layers of one MobileViT block; ``pool``: ``metaformer``)
    unless ``block`` names it; a per-block mixer list gives its first mixer's family.
    """

    embed: Embed = NoEmbed()
    """Token embedding / downsampling at the start of the stage."""
    dim: PositiveInt
    """Output channels (embedding dimension) of the stage."""
    depth: Depth | None = None
    """Number of blocks (may instead come from the spec's ``depths``); all stages together hold at
    most 10,000 blocks."""
    block: FamilyName | None = None
    """Block family; inferred from the mixer when omitted."""
    mixer: Mixer | Annotated[list[Mixer], Field(min_length=1, max_length=MAX_LIST)] = Field(
        description=_mixer_description()
    )
    mlp_ratio: PerBlockFloat | None = None
    """Hidden/embedding ratio of the transformer, ConvNeXt or MetaFormer MLP (default 4; mobilevit
    2); a list gives one per block."""
    expansion: PositiveInt | None = None
    """Bottleneck: output channels / bottleneck width (default 4). MBConv: hidden width / input
    channels (default 4)."""
    pos_embed: Literal["none", "absolute", "sinusoidal", "relative", "relative_bias"] | None = None
    """Position embedding: ``absolute`` (learned, added after the embedding), ``sinusoidal``
    (T2T-ViT's fixed sin/cos table, a frozen parameter, added after the embedding), ``relative``
    (BoTNet logits, the default for ``mhsa``), ``relative_bias`` (Swin's learned bias per window
    offset, the default for ``window``) or ``none`` (the default otherwise)."""
    cls_token: bool = False
    """Prepend a learned class token (transformer stages)."""
    dist_token: bool = False
    """Also prepend DeiT's learned distillation token, after the class token (needs
    ``cls_token``; Touvron et al. 2021). After a last stage with one, the head's ``pool: cls``
    classifies both tokens with two Linears and averages the logits; in training with
    ``distilled_training`` on (:meth:`~archsearch.ArchNet.set_distilled_training`) it returns both."""
    act: Act | None = None
    """Activation: default ``relu`` in bottlenecks, ``gelu`` in transformer and ConvNeXt MLPs,
    ``silu`` in mbconv and mobilevit stages (every conv and the MLP)."""
    mlp_dwconv: bool = False
    """Transformer MLP with a depthwise 3x3 conv (with bias) on the token map between the first
    Linear and the activation (PVT v2); class tokens bypass the conv."""
    norm_out: bool = False
    """LayerNorm on the stage's output tokens, class tokens included (PVT v2)."""
    peg: Annotated[int, Field(ge=0, le=MAX_DEPTH)] | None = None
    """Conditional position encoding (PEG: Chu et al. 2021, CPVT; Twins) after block ``peg`` of the
    stage (``0``: after the first, as CPVT and Twins): a depthwise 3x3 conv (with bias) of the token
    map, added to it; class tokens bypass it. ``null``: none."""

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("mixer"), str):
            data = {**data, "mixer": shorthand_kind(data["mixer"])}
        elif isinstance(data, dict) and isinstance(data.get("mixer"), list):  # one mixer per block
            data = {**data, "mixer": [shorthand_kind(m) for m in data["mixer"]]}
        if isinstance(data, dict) and isinstance(data.get("embed"), str):
            data = {**data, "embed": shorthand_kind(data["embed"])}
        return data


#: The stage fields that may hold one value per block (a mixer kind's are its ``per_block_fields``).
STAGE_PER_BLOCK_FIELDS = ("mlp_ratio",)


class Head(StrictModel):
    """Classifier head: optional 1x1 conv, pooling, optional LayerNorm, dropout, Linear.

    The LayerNorm sits either on every token of the last map before they are averaged
    (``norm: tokens``: ViT, CvT, Swin) or on the pooled vector (``norm: pooled``: ConvNeXt); with
    ``pool: cls`` both normalise the class token alone.
    """

    pool: Literal["avg", "cls"] = "avg"
    """``avg`` averages the last feature map; ``cls`` takes the class token."""
    num_classes: Annotated[int, Field(ge=0, le=MAX_CLASSES)] = 1000
    """Output classes; 0 gives a feature extractor."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Dropout before the classifier."""
    norm: bool | Literal["tokens", "pooled"] | None = None
    """LayerNorm before the classifier: ``tokens`` (per token, then pooled), ``pooled`` (on the
    pooled vector), ``true`` (where the last stage's family puts it: ``pooled`` after ``convnext``
    and ``metaformer``, else ``tokens``) or ``false``; default: on after a transformer, convnext or
    metaformer last stage."""
    conv: PositiveInt | None = None
    """Channels of a 1x1 conv (no bias) + BatchNorm + the last stage's activation on the map
    before pooling (MobileViT's final conv)."""


class Spec(StrictModel):
    """A concrete architecture: input, optional stem, stages, head."""

    name: str | None = None
    """Name of the architecture (defaults to the file name)."""
    input: InputSpec = InputSpec()
    """The input image: size and channels."""
    stem: Stem | None = None
    """Optional stem before the first stage (a bare string is short for ``{kind: ...}``)."""
    depths: Annotated[list[Depth], Field(max_length=MAX_LIST)] | None = None
    """Shorthand for every stage's ``depth``, one per stage."""
    stages: Annotated[list[Stage], Field(min_length=1, max_length=MAX_LIST)]
    """The stages, in order; each hands a feature map to the next."""
    head: Head = Head()
    """The classifier head."""
    norm_eps: Annotated[float, Field(gt=0)] = 1e-5
    """Epsilon of every LayerNorm."""
    drop_path: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Stochastic depth rate, rising linearly over all blocks to this value."""
    dynamic_size: bool = False
    """Accept inputs of other sizes than ``input.size``, as timm's ``dynamic_img_size``: learned
    position tables are resampled to the token grid (bicubic, class tokens kept), sinusoidal ones
    recomputed, Swin windows laid out on the map (same window, shift and bias table; padded where
    they do not tile) and BoTNet relative embeddings resized (linear). Off: a model with such a
    part raises ``ValueError`` naming both sizes on another size (models without one take any
    size). Costs are those of ``input.size`` either way; not part of the spec hash."""

    _source: Any = PrivateAttr(default=None)  # the SourceMap it was loaded from, for error lines

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("stem"), str):
            data = {**data, "stem": shorthand_kind(data["stem"])}
        return data

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """pydantic's ``model_validate``; without options, through :data:`FAST` (a dict whose
        structure was seen before: only its per-block values are validated) and :data:`PARTS` (a
        dict whose top-level keys and stages, but their per-block values, were validated before
        is assembled from those parts): the spec pydantic would give. Anything else, and every
        error, is pydantic's own."""
        if cls is Spec and (not kwargs or all(v is None for v in kwargs.values())):
            return FAST.validate(obj, _from_parts)
        return super().model_validate(obj, **kwargs)


def _from_parts(obj: Any) -> Spec:
    spec = PARTS.validate(obj)
    return spec if spec is not None else Spec.__pydantic_validator__.validate_python(obj)


#: The memo of validated parts behind :meth:`Spec.model_validate`.
PARTS = PartsMemo(
    Spec,
    Stage,
    STAGE_PER_BLOCK_FIELDS,
    {kind.name: (kind.schema, kind.per_block_fields) for kind in MIXERS.values()},
)
#: The fast path in front of :data:`PARTS`: candidates of a structure seen before.
FAST = FastPath(Spec, STAGE_PER_BLOCK_FIELDS, {kind.name: kind.per_block_fields for kind in MIXERS.values()})
