"""Normalisation: a validated :class:`Spec` -> one flat list of fully resolved blocks.

Every stage is resolved (family, defaults, per-block lists) and the feature shape is carried
through it, so impossible shapes are caught here with the YAML path and line, before any module
is built. The compiler, the cost model and the reports all read the :class:`NormalizedSpec`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

from .._errors import Issue, SpecError
from ._schema import (
    AttentionMixer,
    BlockEmbed,
    ConvEmbed,
    ConvMixer,
    ConvStem,
    DwConvMixer,
    Embed,
    Head,
    MBConvEmbed,
    MBConvMixer,
    MergeEmbed,
    MhsaMixer,
    Mixer,
    MobileViTMixer,
    NoEmbed,
    PatchEmbed,
    Spec,
    Stage,
    T2TEmbed,
    WindowMixer,
)
from ._yaml import SourceMap

__all__ = [
    "BlockPlan",
    "FeatureShape",
    "NormalizedSpec",
    "StagePlan",
    "make_divisible",
    "normalize",
    "window_geometry",
]

Family = Literal["bottleneck", "transformer", "convnext", "mbconv", "mobilevit"]
Path = tuple[str | int, ...]

#: Which mixer kinds each block family accepts, and which family a mixer implies.
FAMILY_MIXERS: dict[Family, tuple[str, ...]] = {
    "bottleneck": ("conv", "mhsa"),
    "transformer": ("attention", "window"),
    "convnext": ("dwconv",),
    "mbconv": ("mbconv",),
    "mobilevit": ("mobilevit",),
}
#: Which embeddings each family accepts.
FAMILY_EMBEDS: dict[Family, tuple[str, ...]] = {
    "bottleneck": ("conv", "patch", "block", "t2t", "merge", "mbconv", "none"),
    "transformer": ("conv", "patch", "t2t", "merge", "mbconv", "none"),
    "convnext": ("conv", "patch", "none"),
    "mbconv": ("conv", "patch", "block", "mbconv", "none"),
    "mobilevit": ("conv", "patch", "mbconv", "none"),
}
#: Per-family defaults of the stage keys that mean something to the family.
FAMILY_ACT = {
    "bottleneck": "relu",
    "transformer": "gelu",
    "convnext": "gelu",
    "mbconv": "silu",
    "mobilevit": "silu",
}
FAMILY_MLP_RATIO = {"transformer": 4.0, "convnext": 4.0, "mobilevit": 2.0}
FAMILY_EXPANSION = {"bottleneck": 4, "mbconv": 4}
#: Stage keys that only some families use: key -> (those families, the value meaning "unset").
FAMILY_ONLY_FIELDS: dict[str, tuple[tuple[str, ...], Any]] = {
    "mlp_ratio": (tuple(FAMILY_MLP_RATIO), None),
    "cls_token": (("transformer",), False),
    "expansion": (tuple(FAMILY_EXPANSION), None),
    "mlp_dwconv": (("transformer",), False),
    "norm_out": (("transformer",), False),
}
#: The family each mixer kind implies when a stage names none.
MIXER_FAMILY: dict[str, Family] = {m: f for f, kinds in FAMILY_MIXERS.items() for m in kinds}
#: Which position embeddings each mixer accepts; the first is the default.
MIXER_POS_EMBEDS: dict[str, tuple[str, ...]] = {
    "conv": ("none",),
    "mhsa": ("relative", "none"),
    "attention": ("none", "absolute", "sinusoidal"),
    "dwconv": ("none",),
    "window": ("relative_bias", "none", "absolute"),
    "mbconv": ("none",),
    "mobilevit": ("none",),
}
#: Mixer fields that may be given per block (a list of length ``depth``).
PER_BLOCK_MIXER_FIELDS = ("kv_stride", "q_stride")


@dataclass(frozen=True)
class FeatureShape:
    """The feature map between layers: channels x height x width, plus class tokens."""

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
    family: Family
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

    @property
    def path(self) -> Path:
        return ("stages", self.stage, "blocks", self.position)

    @property
    def kv_stride(self) -> int:
        """This block's key/value stride (1 for mixers without one)."""
        return _scalar(getattr(self.mixer, "kv_stride", 1))

    @property
    def q_stride(self) -> int:
        """This block's query stride (1 for mixers without one)."""
        return _scalar(getattr(self.mixer, "q_stride", 1))

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
    family: Family
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


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, at least ``divisor`` and never
    below 90% of ``value`` (MobileNetV2's and timm's rule for channel counts)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


def pool_out_ceil(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a ``ceil_mode=True`` pooling, as PyTorch computes it."""
    out = math.ceil((size + 2 * padding - kernel) / stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


class _Normalizer:
    def __init__(self, spec: Spec, source: SourceMap):
        self.spec = spec
        self.source = source
        self.issues: list[Issue] = []

    def fail(self, path: Path, message: str, **kwargs: Any) -> None:
        self.issues.append(self.source.issue(path, message, **kwargs))

    def raise_issues(self) -> None:
        if self.issues:
            raise SpecError(self.issues)

    # ------------------------------------------------------------------ the whole spec
    def run(self, name: str) -> NormalizedSpec:
        spec = self.spec
        depths = self.resolve_depths()
        self.raise_issues()
        height, width = spec.input.hw
        shape = FeatureShape(spec.input.channels, height, width)
        input_shape = shape
        stem_shape = None
        if isinstance(spec.stem, ConvStem):  # padded kernel // 2: never empty
            k, s = spec.stem.kernel, spec.stem.stride
            h, w = conv_out(height, k, s, k // 2), conv_out(width, k, s, k // 2)
            shape = stem_shape = FeatureShape(spec.stem.channels, h, w)
        elif spec.stem is not None:  # 7x7/2 conv then 3x3/2 max-pool, both padded: never empty
            h = conv_out(conv_out(height, 7, 2, 3), 3, 2, 1)
            w = conv_out(conv_out(width, 7, 2, 3), 3, 2, 1)
            shape = stem_shape = FeatureShape(spec.stem.channels, h, w)
        total_blocks = sum(depths)
        stages: list[StagePlan] = []
        first_block = 0
        for i, (stage, depth) in enumerate(zip(spec.stages, depths, strict=True)):
            plan = self.stage(i, stage, depth, shape, first_block, total_blocks)
            self.raise_issues()  # later stages depend on this one's shape
            assert plan is not None
            stages.append(plan)
            shape = FeatureShape(plan.out_shape.channels, plan.out_shape.height, plan.out_shape.width)
            first_block += depth
        head = self.head(stages[-1])
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
        return depths

    # ------------------------------------------------------------------ one stage
    def stage(
        self, i: int, stage: Stage, depth: int, shape: FeatureShape, first_block: int, total_blocks: int
    ) -> StagePlan | None:
        path: Path = ("stages", i)
        mixer_kind = stage.mixer.kind
        family: Family
        if stage.block is not None:
            family = stage.block
            if mixer_kind not in FAMILY_MIXERS[family]:
                self.fail(
                    (*path, "mixer", "kind"),
                    f"mixer {mixer_kind!r} does not fit a {family} block",
                    value=mixer_kind,
                    allowed=", ".join(FAMILY_MIXERS[family]),
                )
                return None
        else:
            family = cast(Family, next(f for f, kinds in FAMILY_MIXERS.items() if mixer_kind in kinds))

        self.check_family_fields(path, stage, family)
        if stage.embed.kind not in FAMILY_EMBEDS[family]:
            self.fail(
                (*path, "embed", "kind"),
                f"embedding {stage.embed.kind!r} does not fit a {family} stage",
                value=stage.embed.kind,
                allowed=", ".join(FAMILY_EMBEDS[family]),
            )
        pos_allowed = MIXER_POS_EMBEDS[mixer_kind]
        pos_embed = stage.pos_embed or pos_allowed[0]
        if pos_embed not in pos_allowed:
            self.fail(
                (*path, "pos_embed"),
                f"position embedding {pos_embed!r} does not fit mixer {mixer_kind!r}",
                value=pos_embed,
                allowed=", ".join(pos_allowed),
            )
        mlp_ratios = self.per_block(
            (*path, "mlp_ratio"), stage.mlp_ratio, depth, FAMILY_MLP_RATIO.get(family)
        )
        mixer_values = {
            name: self.per_block((*path, "mixer", name), getattr(stage.mixer, name), depth, None)
            for name in PER_BLOCK_MIXER_FIELDS
            if hasattr(stage.mixer, name)
        }
        if isinstance(stage.mixer, WindowMixer):
            mixer_values["shift"] = self.window_shifts(path, stage, depth)
        if self.issues:
            return None

        act = stage.act or FAMILY_ACT[family]
        embed, embed_shape, block_stride = self.embed(path, stage, family, shape, act)
        if embed_shape is None:
            return None
        cls_tokens = 1 if stage.cls_token else 0
        embed_shape = FeatureShape(embed_shape.channels, embed_shape.height, embed_shape.width, cls_tokens)
        expansion = (stage.expansion or FAMILY_EXPANSION[family]) if family in FAMILY_EXPANSION else None
        self.check_mixer(path, stage.mixer, stage.dim, expansion, family)
        if self.issues:
            return None

        blocks: list[BlockPlan] = []
        current = embed_shape
        stage_mixer = stage.mixer
        if isinstance(stage_mixer, MobileViTMixer):  # blocks: transformer layers on the (resized) map
            dim = stage_mixer.transformer_dim or stage.dim
            stage_mixer = stage_mixer.model_copy(update={"transformer_dim": dim})
            p = stage_mixer.patch
            current = FeatureShape(dim, -(-current.height // p) * p, -(-current.width // p) * p)
        mixer_key = _mixer_key(stage_mixer) if mixer_values else ()
        shapes: dict[tuple[Any, ...], FeatureShape | None] = {}  # blocks alike share their shape
        for j in range(depth):
            mixer = stage_mixer
            if mixer_values:
                values = tuple((name, vals[j]) for name, vals in mixer_values.items() if vals is not None)
                mixer = _mixer_for_block(mixer, mixer_key, values)
            stride = block_stride if j == 0 else 1
            shape_key = (id(mixer), stride, current)
            out = shapes.get(shape_key)
            if out is None:
                out = shapes[shape_key] = self.block_shape(
                    (*path, "mixer"), j, mixer, family, stride, stage.dim, current
                )
            if out is None:
                return None
            index = first_block + j
            drop = self.spec.drop_path * index / max(total_blocks - 1, 1)
            blocks.append(
                BlockPlan(
                    index=index,
                    stage=i,
                    position=j,
                    family=family,
                    mixer=mixer,
                    dim_in=current.channels,
                    dim=out.channels,
                    stride=stride,
                    mlp_ratio=mlp_ratios[j] if mlp_ratios is not None else None,
                    expansion=expansion,
                    act=act,
                    pos_embed=pos_embed,
                    in_shape=current,
                    out_shape=out,
                    drop_path=drop,
                    norm_eps=self.spec.norm_eps,
                    mlp_dwconv=stage.mlp_dwconv,
                )
            )
            current = out
        if family == "mobilevit":  # folded back to the embedded map, projected to the stage dim
            current = FeatureShape(stage.dim, embed_shape.height, embed_shape.width)
        stage_reduction = max(1, round(self.spec.input.hw[0] / current.height))
        return StagePlan(
            index=i,
            family=family,
            embed=embed,
            dim=stage.dim,
            depth=depth,
            cls_token=stage.cls_token,
            pos_embed=pos_embed,
            in_shape=shape,
            embed_shape=embed_shape,
            out_shape=current,
            reduction=stage_reduction,
            blocks=tuple(blocks),
            norm_out=stage.norm_out,
        )

    def check_family_fields(self, path: Path, stage: Stage, family: Family) -> None:
        for name, (owners, unset) in FAMILY_ONLY_FIELDS.items():
            value = getattr(stage, name)
            if family not in owners and value != unset:
                self.fail(
                    (*path, name),
                    f"{name} applies to {_and(owners)} stages, but this stage is a {family} "
                    f"stage (mixer {stage.mixer.kind!r})",
                    value=value,
                )

    def window_shifts(self, path: Path, stage: Stage, depth: int) -> list[bool] | None:
        """Each block's ``shift`` (``true``: Swin's alternation, odd blocks); window-only checks."""
        mixer = stage.mixer
        assert isinstance(mixer, WindowMixer)
        if stage.cls_token:
            self.fail(
                (*path, "cls_token"),
                "window attention partitions the token map into windows and has no place for class tokens",
                value=True,
                allowed="false (with head pool 'avg')",
            )
        if isinstance(mixer.shift, list):
            return self.per_block((*path, "mixer", "shift"), mixer.shift, depth, None)
        return [mixer.shift and j % 2 == 1 for j in range(depth)]

    def per_block(self, path: Path, value: Any, depth: int, default: Any) -> list[Any] | None:
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

    # ------------------------------------------------------------------ embedding
    def embed(
        self, path: Path, stage: Stage, family: Family, shape: FeatureShape, act: str
    ) -> tuple[Embed, FeatureShape | None, int]:
        embed = stage.embed
        h, w = shape.height, shape.width
        epath = (*path, "embed")
        if isinstance(embed, ConvEmbed | PatchEmbed) and embed.norm_first and embed.norm == "none":
            self.fail(
                (*epath, "norm_first"),
                "norm_first puts the norm before the conv, but this embedding has no norm",
                value=True,
                allowed="norm: layer or batch (or norm_first: false)",
            )
            return embed, None, 1
        if isinstance(embed, ConvEmbed):
            padding = embed.kernel // 2 if embed.padding is None else embed.padding
            eps = embed.norm_eps
            if eps is not None and embed.norm != "layer":
                self.fail(
                    (*epath, "norm_eps"),
                    f"norm_eps applies to the layer norm, but this embedding's norm is {embed.norm!r}",
                    value=eps,
                    allowed="norm: layer, or leave norm_eps out",
                )
            elif embed.norm == "layer" and eps is None:
                eps = self.spec.norm_eps
            embed = embed.model_copy(update={"padding": padding, "norm_eps": eps})
            oh, ow = (conv_out(s, embed.kernel, embed.stride, padding) for s in (h, w))
            if oh < 1 or ow < 1:
                self.fail(
                    (*epath, "stride"),
                    f"the {embed.kernel}x{embed.kernel} conv with stride {embed.stride} and padding "
                    f"{padding} leaves no tokens from the {h}x{w} map",
                    value=embed.stride,
                )
                return embed, None, 1
            return embed, FeatureShape(stage.dim, oh, ow), 1
        if isinstance(embed, PatchEmbed):
            if h % embed.stride or w % embed.stride:
                self.fail(
                    (*epath, "stride"),
                    f"the {h}x{w} map is not divisible into {embed.stride}x{embed.stride} patches",
                    value=embed.stride,
                    allowed="strides dividing both sides: "
                    + ", ".join(str(d) for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0),
                )
                return embed, None, 1
            return embed, FeatureShape(stage.dim, h // embed.stride, w // embed.stride), 1
        if isinstance(embed, BlockEmbed):
            return embed, FeatureShape(shape.channels, h, w), embed.stride
        if isinstance(embed, T2TEmbed):
            t2t, out = self.t2t_embed(epath, embed, stage.dim, shape)
            return t2t, out, 1
        if isinstance(embed, MergeEmbed):
            if h < 2 or w < 2:
                self.fail(
                    (*epath, "kind"),
                    f"patch merging concatenates 2x2 neighbourhoods, but the map here is only {h}x{w}",
                    value="merge",
                    allowed="a map of at least 2x2 (merge earlier, or use embed 'none')",
                )
                return embed, None, 1
            return embed, FeatureShape(stage.dim, -(-h // 2), -(-w // 2)), 1
        if isinstance(embed, MBConvEmbed):
            embed = embed.model_copy(update={"act": embed.act or act})
            if embed.kernel % 2 == 0:
                self.fail(
                    (*epath, "kernel"),
                    "the depthwise kernel must be odd (padding kernel // 2)",
                    value=embed.kernel,
                    allowed="odd kernels: 1, 3, 5, 7, ...",
                )
                return embed, None, 1
            pad = embed.kernel // 2
            oh, ow = (
                conv_out(h, embed.kernel, embed.stride, pad),
                conv_out(w, embed.kernel, embed.stride, pad),
            )
            return embed, FeatureShape(stage.dim, oh, ow), 1
        assert isinstance(embed, NoEmbed)
        if family in ("transformer", "convnext") and shape.channels != stage.dim:
            self.fail(
                (*path, "dim"),
                f"embed 'none' keeps the {shape.channels} incoming channels, so dim must be "
                f"{shape.channels} (or use a conv/patch embedding)",
                value=stage.dim,
            )
            return embed, None, 1
        return embed, FeatureShape(shape.channels, h, w), 1

    def t2t_embed(
        self, epath: Path, embed: T2TEmbed, dim: int, shape: FeatureShape
    ) -> tuple[T2TEmbed, FeatureShape | None]:
        """Resolve the paddings and carry the map through every soft split of a t2t embedding."""
        n, ok = len(embed.kernels), True
        for name in ("strides", "paddings"):
            given = getattr(embed, name)
            if given is not None and len(given) != n:
                self.fail(
                    (*epath, name),
                    f"needs one value per soft split: {n} kernel{'s' if n != 1 else ''}, "
                    f"{len(given)} {name if len(given) != 1 else name[:-1]}",
                    value=given,
                )
                ok = False
        if embed.token_dim % embed.heads:
            self.fail(
                (*epath, "heads"),
                f"heads must divide the token_dim {embed.token_dim}",
                value=embed.heads,
                allowed=", ".join(str(d) for d in range(1, embed.token_dim + 1) if embed.token_dim % d == 0),
            )
            ok = False
        h, w = shape.height, shape.width
        stride = embed.stride
        if ok and (h % stride or w % stride):
            self.fail(
                (*epath, "strides"),
                f"the soft splits stride {stride} in all (the product of the strides), which must "
                f"divide the {h}x{w} map",
                value=embed.strides,
                allowed="strides whose product divides both sides: "
                + ", ".join(str(d) for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0),
            )
            ok = False
        if not ok:
            return embed, None
        paddings = (
            embed.paddings
            if embed.paddings is not None
            else [max(0, (k - s + 1) // 2) for k, s in zip(embed.kernels, embed.strides, strict=True)]
        )
        embed = embed.model_copy(update={"paddings": paddings})
        channels = shape.channels
        for j, (k, s, p) in enumerate(zip(embed.kernels, embed.strides, paddings, strict=True)):
            oh, ow = conv_out(h, k, s, p), conv_out(w, k, s, p)
            if oh < 1 or ow < 1:
                self.fail(
                    (*epath, "kernels", j),
                    f"soft split {j}: the {k}x{k} unfold with stride {s} and padding {p} leaves no "
                    f"tokens from the {h}x{w} map",
                    value=k,
                    allowed=f"kernels up to {min(h, w) + 2 * p}",
                )
                return embed, None
            width = channels * k * k
            if j < n - 1 and width < embed.heads:
                self.fail(
                    (*epath, "heads"),
                    f"soft split {j} makes {width}-wide tokens, fewer than the heads: the token "
                    "transformer's logit scale (width // heads) ** -0.5 needs heads <= width",
                    value=embed.heads,
                    allowed=f"at most {width}",
                )
                return embed, None
            h, w, channels = oh, ow, embed.token_dim
        return embed, FeatureShape(dim, h, w)

    # ------------------------------------------------------------------ mixers and block shapes
    def check_mixer(self, path: Path, mixer: Mixer, dim: int, expansion: int | None, family: Family) -> None:
        mpath = (*path, "mixer")
        width = dim // expansion if expansion and family == "bottleneck" else dim
        if isinstance(mixer, MobileViTMixer):
            width = mixer.transformer_dim or dim
        if expansion and family == "bottleneck" and dim % expansion:
            self.fail(
                (*path, "expansion"), f"expansion {expansion} does not divide dim {dim}", value=expansion
            )
            return
        if (
            isinstance(mixer, ConvMixer | AttentionMixer | DwConvMixer | MBConvMixer | MobileViTMixer)
            and mixer.kernel % 2 == 0
        ):
            self.fail(
                (*mpath, "kernel"),
                "the kernel must be odd: with padding kernel // 2 an even kernel changes the map "
                "size and the residual would not match",
                value=mixer.kernel,
                allowed="odd kernels: 1, 3, 5, 7, ...",
            )
        if (
            isinstance(mixer, AttentionMixer | MhsaMixer | WindowMixer | MobileViTMixer)
            and width % mixer.heads
        ):
            what = {"bottleneck": "bottleneck width", "mobilevit": "transformer_dim"}.get(family, "dim")
            self.fail(
                (*mpath, "heads"),
                f"heads must divide the {what} {width}",
                value=mixer.heads,
                allowed=", ".join(str(d) for d in range(1, width + 1) if width % d == 0),
            )
        if isinstance(mixer, ConvMixer) and width % mixer.groups:
            self.fail(
                (*mpath, "groups"), f"groups must divide the bottleneck width {width}", value=mixer.groups
            )
        if isinstance(mixer, AttentionMixer):
            strided = [
                name for name in PER_BLOCK_MIXER_FIELDS if any(v > 1 for v in _as_list(getattr(mixer, name)))
            ]
            if mixer.qkv == "linear" and strided:
                self.fail(
                    (*mpath, strided[0]),
                    f"{strided[0]} > 1 needs a convolutional projection",
                    value=getattr(mixer, strided[0]),
                    allowed="qkv: dw_bn, avg or sr (or stride 1)"
                    if strided[0] == "kv_stride"
                    else "qkv: dw_bn (or stride 1)",
                )
            if mixer.qkv == "avg" and "q_stride" in strided:
                self.fail(
                    (*mpath, "q_stride"),
                    "the avg projection keeps queries linear (official CvT), so q_stride must be 1",
                    value=mixer.q_stride,
                    allowed="qkv: dw_bn for a strided query",
                )
            if mixer.qkv == "sr":
                self.check_sr(mpath, mixer, strided)
            elif mixer.norm_eps is not None:
                self.fail(
                    (*mpath, "norm_eps"),
                    f"norm_eps is the epsilon of the sr projection's LayerNorm; qkv {mixer.qkv!r} has none",
                    value=mixer.norm_eps,
                    allowed="qkv: sr, or leave norm_eps out",
                )

    def check_sr(self, mpath: Path, mixer: AttentionMixer, strided: list[str]) -> None:
        """PVT v2's spatial reduction: queries are a plain Linear, the conv's kernel is its stride."""
        if "q_stride" in strided:
            self.fail(
                (*mpath, "q_stride"),
                "the sr projection keeps queries at full resolution (PVT v2), so q_stride must be 1",
                value=mixer.q_stride,
                allowed="qkv: dw_bn for a strided query",
            )
        if "kernel" in mixer.model_fields_set:
            self.fail(
                (*mpath, "kernel"),
                "the sr projection's conv has kernel = stride = kv_stride; 'kernel' does not apply",
                value=mixer.kernel,
                allowed="leave kernel out (set kv_stride)",
            )

    def block_shape(
        self, mpath: Path, j: int, mixer: Mixer, family: Family, stride: int, dim: int, shape: FeatureShape
    ) -> FeatureShape | None:
        h, w = shape.height, shape.width
        if isinstance(mixer, ConvMixer | MBConvMixer):
            pad = mixer.kernel // 2
            oh, ow = conv_out(h, mixer.kernel, stride, pad), conv_out(w, mixer.kernel, stride, pad)
        elif isinstance(mixer, DwConvMixer):
            oh, ow = h, w  # odd kernel, padding kernel // 2, stride 1
        elif isinstance(mixer, MobileViTMixer):
            return shape  # transformer layers keep the unfolded map
        elif isinstance(mixer, MhsaMixer):
            if stride > min(h, w):
                self.fail(
                    ("stages", mpath[1], "embed", "stride"),
                    f"the {stride}x{stride} pool after MHSA leaves no tokens from the {h}x{w} map",
                    value=stride,
                )
                return None
            oh, ow = -(-h // stride), -(-w // stride)  # ceil-mode pool, like the strided shortcut
        elif isinstance(mixer, WindowMixer):
            oh, ow = h, w
        else:
            assert isinstance(mixer, AttentionMixer)
            for name in PER_BLOCK_MIXER_FIELDS:
                value = _scalar(getattr(mixer, name))
                if value > min(h, w):
                    given = getattr(self.spec.stages[mpath[1]].mixer, name)  # type: ignore[index]
                    at = (*mpath, name, j) if isinstance(given, list) else (*mpath, name)
                    why = (
                        f"the {value}x{value} spatial-reduction conv would leave no keys"
                        if mixer.qkv == "sr"
                        else "the projection would only sample its first row and column"
                    )
                    self.fail(
                        at,
                        f"{name} {value} is larger than the {h}x{w} token map block {j} sees, so {why}",
                        value=value,
                        allowed=f"at most {min(h, w)}",
                    )
                    return None
            q_stride, pad = _scalar(mixer.q_stride), mixer.kernel // 2
            oh, ow = conv_out(h, mixer.kernel, q_stride, pad), conv_out(w, mixer.kernel, q_stride, pad)
        return FeatureShape(dim, oh, ow, shape.cls_tokens)

    # ------------------------------------------------------------------ head
    def head(self, last: StagePlan) -> Head:
        head = self.spec.head
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
        norm: bool | str = head.norm if head.norm is not None else last.family in ("transformer", "convnext")
        if norm is True:
            norm = "pooled" if last.family == "convnext" else "tokens"
        if norm and head.pool == "cls":
            norm = "tokens"  # the class token is the only token: both placements are the same
        return head.model_copy(update={"norm": norm})


_MIXERS: dict[tuple[Any, ...], Mixer] = {}


def _mixer_key(mixer: Mixer) -> tuple[Any, ...]:
    return (type(mixer), *((k, tuple(v) if isinstance(v, list) else v) for k, v in mixer.__dict__.items()))


def _mixer_for_block(mixer: Mixer, mixer_key: tuple[Any, ...], values: tuple[tuple[str, Any], ...]) -> Mixer:
    """The stage's mixer with one block's per-block values, shared between blocks and specs
    (mixers are frozen); normalising a search's candidates copies each variant once."""
    key = (*mixer_key, values)
    found = _MIXERS.get(key)
    if found is None:
        if len(_MIXERS) > 4096:
            _MIXERS.clear()
        found = _MIXERS[key] = mixer.model_copy(update=dict(values))
    return found


def window_geometry(
    window: int, shift: bool, height: int, width: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The (height, width) window and (height, width) shift a window-attention block uses on a
    ``height`` x ``width`` map, as timm's ``_calc_window_shift``: a side no larger than the window
    makes the window that side and is not shifted; otherwise the shift is ``window // 2``."""
    shift_by = window // 2 if shift else 0
    return (
        (min(window, height), min(window, width)),
        (shift_by if height > window else 0, shift_by if width > window else 0),
    )


def _and(words: tuple[str, ...] | list[str]) -> str:
    """``("a", "b", "c")`` -> ``"a, b and c"``."""
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def _scalar(value: int | list[int]) -> int:
    assert not isinstance(value, list), "per-block lists are resolved by normalisation"
    return value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def normalize(spec: Spec, source: SourceMap | None = None, name: str | None = None) -> NormalizedSpec:
    """Resolve ``spec`` into stages and blocks with shapes; raise :class:`SpecError` if impossible."""
    source = source or getattr(spec, "_source", None) or SourceMap()
    return _Normalizer(spec, source).run(name or spec.name or "spec")
