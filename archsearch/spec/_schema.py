"""The spec schema: typed, strict, discriminated on ``kind``, self-documenting.

Every model forbids unknown keys (listing the allowed ones), takes no type coercion (``"3"`` is
not a depth) and is frozen, so a validated spec can be hashed and shared. Per-field checks live
here; checks that need several fields or the running feature shape live in
:mod:`archsearch.spec._normalize`, which every consumer goes through.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from ..core import Act, PerBlockFloat, PositiveInt, StrictModel, shorthand_kind
from ..kinds import MIXERS, FamilyName, Mixer, Stem

__all__ = [
    "BlockEmbed",
    "ConvEmbed",
    "Embed",
    "Head",
    "InputSpec",
    "MBConvEmbed",
    "MergeEmbed",
    "NoEmbed",
    "PatchEmbed",
    "Spec",
    "Stage",
    "T2TEmbed",
]

# --------------------------------------------------------------------------- input


class InputSpec(StrictModel):
    """The image the network takes."""

    size: PositiveInt | Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] = 224
    """Side of a square image, or ``[height, width]``."""
    channels: PositiveInt = 3
    """Colour channels."""

    @property
    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else (self.size[0], self.size[1])


# --------------------------------------------------------------------------- token embeddings


class ConvEmbed(StrictModel):
    """Overlapping convolutional token embedding (CvT, PVT): conv, then a norm."""

    kind: Literal["conv"] = "conv"
    kernel: PositiveInt = 3
    """Kernel side of the conv."""
    stride: PositiveInt = 2
    """Spatial stride of the embedding (one of the five first-class choices)."""
    padding: Annotated[int, Field(ge=0)] | None = None
    """Zero padding; default ``kernel // 2``."""
    norm: Literal["layer", "batch", "none"] = "layer"
    """Norm after the conv: LayerNorm over channels (CvT), BatchNorm, or none."""
    norm_first: bool = False
    """Apply the norm before the conv, on the incoming channels, instead of after it."""
    bias: bool = True
    """Bias in the conv."""
    norm_eps: Annotated[float, Field(gt=0)] | None = None
    """Epsilon of the ``layer`` norm; default the spec's ``norm_eps`` (PVT v2: ``1e-5`` here, ``1e-6``
    in the blocks)."""


class PatchEmbed(StrictModel):
    """Non-overlapping patchify (ViT): a conv whose kernel equals its stride."""

    kind: Literal["patch"] = "patch"
    stride: PositiveInt = 16
    """Patch side, which is also the stride; must divide the feature map."""
    norm: Literal["layer", "batch", "none"] = "none"
    """Norm after the patchify conv (Swin, the ConvNeXt stem: layer)."""
    norm_first: bool = False
    """Apply the norm before the conv, on the incoming channels (ConvNeXt downsampling: LayerNorm,
    then a 2x2/2 conv)."""
    bias: bool = True
    """Bias in the patchify conv."""


class BlockEmbed(StrictModel):
    """No separate embedding: the stage's first block downsamples (ResNet stages).

    A ``bottleneck`` block strides its 3x3 conv (ResNet v1.5) or 2x2 average-pools after MHSA
    (BoTNet), with a strided 1x1 conv + BatchNorm on the shortcut.
    """

    kind: Literal["block"] = "block"
    stride: PositiveInt = 1
    """Spatial stride of the stage's first block."""


class T2TEmbed(StrictModel):
    """Tokens-to-Token embedding (T2T-ViT): soft splits with a token transformer between them.

    Each soft split unfolds the map into overlapping ``kernel x kernel`` patches, one token per
    patch (``channels * kernel**2`` wide). Between soft splits a token transformer (LayerNorm,
    attention projecting to ``token_dim`` with the skip connection through its values, then a
    pre-norm GELU MLP) re-structures the tokens into a ``token_dim``-channel map; after the last
    soft split a Linear projects the tokens to the stage dim. The embedding's stride is the
    product of the soft-split strides, and must divide the map.
    """

    kind: Literal["t2t"] = "t2t"
    kernels: Annotated[list[PositiveInt], Field(min_length=1)] = [7, 3, 3]  # noqa: RUF012 (pydantic copies defaults)
    """Kernel side of each soft split, in order."""
    strides: Annotated[list[PositiveInt], Field(min_length=1)] = [4, 2, 2]  # noqa: RUF012
    """Stride of each soft split; their product is the embedding's stride (``embed.stride``) and
    must divide the map."""
    paddings: list[Annotated[int, Field(ge=0)]] | None = None
    """Zero padding of each soft split; default ``(kernel - stride + 1) // 2`` (at least 0), the
    least that shrinks a map by exactly the stride (T2T-ViT: 2, 1, 1)."""
    token_dim: PositiveInt = 64
    """Channels of the tokens the token transformers produce."""
    heads: PositiveInt = 1
    """Attention heads of the token transformers; must divide ``token_dim``."""
    mlp_ratio: Annotated[float, Field(gt=0)] = 1.0
    """Hidden/``token_dim`` ratio of the token transformers' MLP."""
    qkv_bias: bool = False
    """Bias in the token transformers' q/k/v Linear."""

    @property
    def stride(self) -> int:
        """Spatial stride of the whole embedding: the product of the soft-split strides."""
        return math.prod(self.strides)


class MergeEmbed(StrictModel):
    """Swin patch merging: each 2x2 neighbourhood concatenated (4C), LayerNorm, Linear to ``dim``.

    Halves the map (an odd side is zero-padded at the bottom/right first, as timm does); the
    Linear has no bias. Needs a map of at least 2x2.
    """

    kind: Literal["merge"] = "merge"


class MBConvEmbed(StrictModel):
    """One MobileNetV2 inverted residual block as the embedding (MobileViT's strided MV2).

    1x1 expand conv + BN + act, kxk depthwise conv (strided) + BN + act, 1x1 project conv + BN to
    the stage dim; residual only where the shape is unchanged. The hidden width is the input
    channels times ``expansion``, rounded to a multiple of 8 as timm and MobileNetV2 do.
    """

    kind: Literal["mbconv"] = "mbconv"
    stride: PositiveInt = 2
    """Spatial stride of the depthwise conv."""
    expansion: PositiveInt = 4
    """Hidden width / input channels."""
    kernel: PositiveInt = 3
    """Kernel side of the depthwise conv (padding ``kernel // 2``); must be odd."""
    act: Act | None = None
    """Activation; default: the stage's ``act``."""


class NoEmbed(StrictModel):
    """No embedding: the stage continues on the previous feature map unchanged."""

    kind: Literal["none"] = "none"


Embed = Annotated[
    ConvEmbed | PatchEmbed | BlockEmbed | T2TEmbed | MergeEmbed | MBConvEmbed | NoEmbed,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- stages and head


def _mixer_description() -> str:
    names = [f"``{name}``" for name in MIXERS.names()]
    listed = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return f"Token mixer: {listed} (a bare string is short for ``{{kind: ...}}``)."


class Stage(StrictModel):
    """A token embedding / downsampling step followed by ``depth`` blocks of one family.

    The family follows from the mixer (``conv``/``mhsa``: ``bottleneck``; ``attention``/``window``:
    ``transformer``; ``dwconv``: ``convnext``; ``mbconv``: ``mbconv``; ``mobilevit``: ``mobilevit``,
    whose blocks are the transformer layers of one MobileViT block) unless ``block`` names it.
    """

    embed: Embed = NoEmbed()
    """Token embedding / downsampling at the start of the stage."""
    dim: PositiveInt
    """Output channels (embedding dimension) of the stage."""
    depth: PositiveInt | None = None
    """Number of blocks (may instead come from the spec's ``depths``)."""
    block: FamilyName | None = None
    """Block family; inferred from the mixer when omitted."""
    mixer: Mixer = Field(description=_mixer_description())
    mlp_ratio: PerBlockFloat | None = None
    """Hidden/embedding ratio of the transformer or ConvNeXt MLP (default 4; mobilevit 2); a list
    gives one per block."""
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
    act: Act | None = None
    """Activation: default ``relu`` in bottlenecks, ``gelu`` in transformer and ConvNeXt MLPs,
    ``silu`` in mbconv and mobilevit stages (every conv and the MLP)."""
    mlp_dwconv: bool = False
    """Transformer MLP with a depthwise 3x3 conv (with bias) on the token map between the first
    Linear and the activation (PVT v2); class tokens bypass the conv."""
    norm_out: bool = False
    """LayerNorm on the stage's output tokens, class tokens included (PVT v2)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("mixer"), str):
            data = {**data, "mixer": shorthand_kind(data["mixer"])}
        if isinstance(data, dict) and isinstance(data.get("embed"), str):
            data = {**data, "embed": shorthand_kind(data["embed"])}
        return data


class Head(StrictModel):
    """Classifier head: optional 1x1 conv, pooling, optional LayerNorm, dropout, Linear.

    The LayerNorm sits either on every token of the last map before they are averaged
    (``norm: tokens``: ViT, CvT, Swin) or on the pooled vector (``norm: pooled``: ConvNeXt); with
    ``pool: cls`` both normalise the class token alone.
    """

    pool: Literal["avg", "cls"] = "avg"
    """``avg`` averages the last feature map; ``cls`` takes the class token."""
    num_classes: Annotated[int, Field(ge=0)] = 1000
    """Output classes; 0 gives a feature extractor."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Dropout before the classifier."""
    norm: bool | Literal["tokens", "pooled"] | None = None
    """LayerNorm before the classifier: ``tokens`` (per token, then pooled), ``pooled`` (on the
    pooled vector), ``true`` (where the last stage's family puts it: ``pooled`` after ``convnext``,
    else ``tokens``) or ``false``; default: on after a transformer or convnext last stage."""
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
    depths: list[PositiveInt] | None = None
    """Shorthand for every stage's ``depth``, one per stage."""
    stages: Annotated[list[Stage], Field(min_length=1)]
    """The stages, in order; each hands a feature map to the next."""
    head: Head = Head()
    """The classifier head."""
    norm_eps: Annotated[float, Field(gt=0)] = 1e-5
    """Epsilon of every LayerNorm."""
    drop_path: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Stochastic depth rate, rising linearly over all blocks to this value."""

    _source: Any = PrivateAttr(default=None)  # the SourceMap it was loaded from, for error lines

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("stem"), str):
            data = {**data, "stem": shorthand_kind(data["stem"])}
        return data
