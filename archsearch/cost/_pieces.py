"""A plan cut into latency pieces: the parts a latency table times alone and a prediction sums.

A model is ``stem -> stages -> head``; each stage is its entry (embedding, tokens, class token,
position embedding, ``norm_out``) and its blocks. The pieces of a plan are:

* ``stem``: the stem on the input image;
* ``stage``: a stage's entry, i.e. the stage module built with no blocks (the embedding and the
  stage's own work around the blocks), on the map the previous stage hands over;
* ``block``: one block on the input it gets in the model;
* ``head``: the classifier head on the last stage's map and class tokens;

plus the per-model overhead (the model's own forward calls), which is not a piece: the predictor
fits it (:mod:`._predict`). Families whose blocks cannot run alone on a plain tensor (MobileViT:
the blocks see unfolded patch sequences; any family not listed in :data:`BLOCK_INPUT`) are one
``stage`` piece with their blocks inside.

Each piece has a stable key, a string: the piece's kind, its family, the kind's own
``latency_key`` (:class:`archsearch.kinds.MixerKind`, ``EmbedKind``, ``StemKind``) and its input
shape. Two pieces with the same key build the same modules and run on the same input: one
measurement serves every member of a space that uses it (Once-for-All's per-device lookup tables
key blocks the same way: operator, options and input shape).

Timing a piece alone is faithful to the model when its input has the model's memory layout: the
first block of a token stage without class token or position embedding sees the transposed view
of the embedded map, and a map coming out of a token stage is the channels-last view
:func:`archsearch.ops.tokens_to_map` makes; the pieces are given the same.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import torch
from pydantic import BaseModel
from torch import nn

from ..compiler import ClassifierHead
from ..core import BlockPlan, FeatureShape, NormalizedSpec, StagePlan
from ..kinds import EMBEDS, FAMILIES, MIXERS, STEMS, EmbedKind, MixerKind, build_mixer
from ..ops import tokens_to_map
from ._latency import LatencyResult, time_call, torch_dtype
from ._memo import ObjectMemo

__all__ = [
    "BLOCK_INPUT",
    "Piece",
    "PieceTiming",
    "clear_piece_keys",
    "measure_piece",
    "piece_keys",
    "plan_pieces",
]

#: How a family's blocks are called alone: on the ``(B, C, H, W)`` map (``map``), or on
#: ``(tokens (B, cls + H*W, C), (H, W))`` (``tokens``). A family not listed is timed as whole stages.
BLOCK_INPUT: dict[str, Literal["map", "tokens"]] = {
    "bottleneck": "map",
    "convnext": "map",
    "mbconv": "map",
    "transformer": "tokens",
    "multiscale": "tokens",
}

PieceKind = Literal["stem", "stage", "block", "head"]


@dataclass(frozen=True)
class Piece:
    """One piece of a plan: its table key, what it is (for people) and what builds it."""

    key: str
    kind: PieceKind
    what: str
    """E.g. ``block transformer/attention 64x8x8`` (``archsearch latency-table`` lists these)."""
    plan: NormalizedSpec
    stage: int | None = None
    block: int | None = None
    """Position of the block in its stage."""


@dataclass(frozen=True)
class PieceTiming:
    """A piece's measurement: the harness's result and the piece's key and description."""

    key: str
    what: str
    result: LatencyResult
    params: int = 0
    """Parameters and buffers of the piece's modules (elements): the weights a forward reads."""


# --------------------------------------------------------------------------- keys


def _fmt(value: Any) -> str:
    """A value as stable key text: shapes as ``64x8x8+1cls``, whole floats as integers."""
    if type(value) is int or type(value) is str:  # the common case first (not bool, not an Enum)
        return str(value)
    if isinstance(value, FeatureShape):
        return str(value)
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Enum):
        return _fmt(value.value)
    if isinstance(value, list | tuple):
        return "(" + ",".join(_fmt(v) for v in value) + ")"
    if isinstance(value, BaseModel):
        return _fmt(tuple(value.__dict__.values()))
    return str(value)


def _token_family(family: str) -> bool:
    return BLOCK_INPUT.get(family) == "tokens"


def _viewed_tokens(block: BlockPlan) -> bool:
    """The block gets the transposed view of the embedded map (first block of a token stage, no
    class token, no position embedding added)."""
    return (
        block.position == 0
        and block.in_shape.cls_tokens == 0
        and block.pos_embed not in ("absolute", "sinusoidal")
    )


_TEXT: dict[tuple[Any, ...], str] = {}


def _text(parts: tuple[Any, ...]) -> str:
    """``parts`` as key text (``block|transformer|...``), cached by the parts themselves."""
    try:
        return _TEXT[parts]
    except KeyError:
        if len(_TEXT) > 200_000:
            _TEXT.clear()
        text = _TEXT[parts] = "|".join(_fmt(v) for v in parts)
        return text
    except TypeError:  # a kind's latency key holding something unhashable
        return "|".join(_fmt(v) for v in parts)


#: BlockPlan fields a block's time does not depend on (where it sits, stochastic depth, norm eps),
#: or that its key holds another way (the mixer, through its kind's ``latency_key``; the output
#: shape, which the rest determine). Every other field is in the key, so a field added to
#: BlockPlan (a shortcut's form, say) tells pieces apart without an edit here.
_NOT_IN_KEY = frozenset(
    ("index", "stage", "position", "drop_path", "norm_eps", "family", "mixer", "out_shape")
)
_KEY_FIELDS = tuple(f.name for f in dataclasses.fields(BlockPlan) if f.name not in _NOT_IN_KEY)
_key_fields = operator.attrgetter(*_KEY_FIELDS)

#: Kind name -> whether the kind's ``latency_key`` is its base class's (:class:`MixerKind`'s
#: reads only the block's mixer object; :class:`EmbedKind`'s only the stage's embedding object,
#: ``c_in``, ``stage.dim`` and ``stage.in_shape``): those keys are memoised by those objects (a
#: space's members share a few dozen of them).
_BASE_KEY: dict[tuple[str, str], bool] = {}
_MIXER_KEYS: ObjectMemo[tuple[Any, ...]] = ObjectMemo(size=4096)
_EMBED_KEYS: ObjectMemo[dict[tuple[Any, ...], tuple[Any, ...]]] = ObjectMemo(size=4096)


def _base_key(kind: Any, base: type[MixerKind] | type[EmbedKind]) -> bool:
    """Whether ``kind`` (a registered kind) keeps ``base``'s ``latency_key``."""
    name = (base.__name__, kind.name)
    only = _BASE_KEY.get(name)
    if only is None:
        only = _BASE_KEY[name] = type(kind).latency_key is base.latency_key
    return only


def _mixer_key(block: BlockPlan) -> tuple[Any, ...]:
    """The mixer kind's ``latency_key`` of ``block``."""
    mixer = block.mixer
    kind = MIXERS.get(mixer.kind)
    if not _base_key(kind, MixerKind):
        return kind.latency_key(block)
    key = _MIXER_KEYS.get(mixer)
    if key is None:
        key = kind.latency_key(block)
        _MIXER_KEYS.put(mixer, key)
    return key


def _block_key(block: BlockPlan) -> str:
    view = _token_family(block.family) and _viewed_tokens(block)
    return _text(("block", block.family, _mixer_key(block), *_key_fields(block), "view" if view else "dense"))


def _embed_key(stage: StagePlan, c_in: int) -> tuple[Any, ...]:
    """The embedding kind's ``latency_key`` of ``stage`` on ``c_in`` incoming channels."""
    embed = stage.embed
    kind = EMBEDS.get(embed.kind)
    if not _base_key(kind, EmbedKind):
        return kind.latency_key(stage, c_in)
    keys = _EMBED_KEYS.get(embed)
    if keys is None:
        keys = {}
        _EMBED_KEYS.put(embed, keys)
    where = (c_in, stage.dim, stage.in_shape)
    key = keys.get(where)
    if key is None:
        if len(keys) > 256:
            keys.clear()
        key = keys[where] = kind.latency_key(stage, c_in)
    return key


def _stage_key(stage: StagePlan, c_in: int, after_tokens: bool) -> str:
    embed = _embed_key(stage, c_in)
    parts: tuple[Any, ...] = (
        "stage",
        stage.family,
        embed,
        stage.embed_shape,
        stage.pos_embed,
        stage.norm_out and stage.out_shape,
        "channels_last" if after_tokens else "dense",
    )
    if stage.family not in BLOCK_INPUT:  # the whole stage, its blocks inside
        parts += (tuple(_block_key(b) for b in stage.blocks),)
    return _text(parts)


def _stem_key(plan: NormalizedSpec) -> str | None:
    stem = plan.spec.stem
    if stem is None:
        return None
    return _text(("stem", STEMS.get(stem.kind).latency_key(stem, plan.input_shape)))


def _head_key(plan: NormalizedSpec) -> str:
    last = plan.stages[-1]
    return _text(
        (
            "head",
            plan.head,
            last.out_shape,
            last.blocks[-1].act,
            "channels_last" if _token_family(last.family) else "dense",
        )
    )


# Memos by plan object, storing a value on its object's second sight only: one-off plans are not
# kept alive (a memo holding every plan a search predicts would make the garbage collector's full
# passes ever slower, as in :mod:`._memo`).
_BLOCK_KEYS: ObjectMemo[str] = ObjectMemo(second_sight=True)
_STAGE_KEYS: ObjectMemo[tuple[tuple[int, bool], tuple[str, ...]]] = ObjectMemo(second_sight=True)
_PLAN_KEYS: ObjectMemo[tuple[str, ...]] = ObjectMemo(second_sight=True)


def _stage_keys(stage: StagePlan, c_in: int, after_tokens: bool) -> tuple[str, ...]:
    """The keys of a stage's pieces (its entry, then its blocks), memoised by stage plan object."""
    hit = _STAGE_KEYS.get(stage)
    if hit is not None and hit[0] == (c_in, after_tokens):
        return hit[1]
    keys = [_stage_key(stage, c_in, after_tokens)]
    if stage.family in BLOCK_INPUT:
        for block in stage.blocks:
            key = _BLOCK_KEYS.get(block)
            if key is None:
                key = _block_key(block)
                _BLOCK_KEYS.put(block, key)
            keys.append(key)
    out = tuple(keys)
    _STAGE_KEYS.put(stage, ((c_in, after_tokens), out))
    return out


def _stage_inputs(plan: NormalizedSpec) -> list[tuple[StagePlan, int, bool]]:
    """Each stage with its incoming channels and whether that map comes out of a token stage."""
    c_in = plan.stem_shape.channels if plan.stem_shape is not None else plan.input_shape.channels
    after_tokens = False
    out = []
    for stage in plan.stages:
        out.append((stage, c_in, after_tokens))
        c_in, after_tokens = stage.out_shape.channels, _token_family(stage.family)
    return out


def piece_keys(plan: NormalizedSpec) -> tuple[str, ...]:
    """The table keys of ``plan``'s pieces, in model order (stem, then per stage its entry and
    blocks, then the head); a key appears as often as the model runs the piece. Memoised by plan
    object (blocks and stages the normaliser shares are keyed once): the fast path of prediction,
    no module built."""
    hit = _PLAN_KEYS.get(plan)
    if hit is not None:
        return hit
    keys: list[str] = []
    stem = _stem_key(plan)
    if stem is not None:
        keys.append(stem)
    for stage, c_in, after_tokens in _stage_inputs(plan):
        keys.extend(_stage_keys(stage, c_in, after_tokens))
    keys.append(_head_key(plan))
    out = tuple(keys)
    _PLAN_KEYS.put(plan, out)
    return out


def clear_piece_keys() -> None:
    """Forget the memoised piece keys (for benchmarks that time key building from scratch)."""
    for memo in (_PLAN_KEYS, _STAGE_KEYS, _BLOCK_KEYS, _MIXER_KEYS, _EMBED_KEYS):
        memo.clear()
    _TEXT.clear()


def plan_pieces(plan: NormalizedSpec) -> list[Piece]:
    """``plan`` cut into pieces (one per entry of :func:`piece_keys`, in the same order), each of
    which :func:`measure_piece` can build and time alone."""
    pieces: list[Piece] = []
    stem = _stem_key(plan)
    if stem is not None:
        assert plan.spec.stem is not None
        pieces.append(Piece(stem, "stem", f"stem {plan.spec.stem.kind} {plan.input_shape}", plan))
    for stage, c_in, after_tokens in _stage_inputs(plan):
        keys = _stage_keys(stage, c_in, after_tokens)
        what = f"stage {stage.family} {stage.embed.kind} embed {stage.in_shape}->{stage.embed_shape}"
        if stage.family not in BLOCK_INPUT:
            what = f"stage {stage.family} with {stage.depth} blocks {stage.in_shape}->{stage.out_shape}"
        pieces.append(Piece(keys[0], "stage", what, plan, stage.index))
        for block, key in zip(stage.blocks, keys[1:], strict=False):
            what = f"block {block.family}/{block.mixer.kind} {block.in_shape}"
            pieces.append(Piece(key, "block", what, plan, stage.index, block.position))
    pieces.append(Piece(_head_key(plan), "head", f"head {plan.head.pool} {plan.out_shape}", plan))
    return pieces


# --------------------------------------------------------------------------- building and timing


def _map_input(shape: FeatureShape, batch: int, after_tokens: bool, **kw: Any) -> torch.Tensor:
    """A ``(B, C, H, W)`` map; out of a token stage, the channels-last view it is there."""
    if not after_tokens:
        return torch.randn(batch, *shape.as_tuple(), **kw)
    tokens = torch.randn(batch, shape.cls_tokens + shape.height * shape.width, shape.channels, **kw)
    return tokens_to_map(tokens[:, shape.cls_tokens :], (shape.height, shape.width))


def _piece_call(
    piece: Piece, batch: int, device: torch.device, dtype: torch.dtype
) -> tuple[Callable[[], Any], nn.Module]:
    """Build ``piece`` (eval mode, on ``device`` in ``dtype``) and make its inputs; return the
    call that runs it once, and the module."""
    plan = piece.plan
    kw: dict[str, Any] = {"device": device, "dtype": dtype}
    module: nn.Module
    if piece.kind == "stem":
        assert plan.spec.stem is not None
        module = STEMS.get(plan.spec.stem.kind).build(plan.spec.stem, plan.input_shape.channels)
        args: tuple[Any, ...] = (_map_input(plan.input_shape, batch, False, **kw),)
    elif piece.kind == "head":
        module = ClassifierHead(plan)
        last = plan.stages[-1]
        x = _map_input(last.out_shape, batch, _token_family(last.family), **kw)
        cls = torch.randn(batch, last.out_shape.cls_tokens, last.out_shape.channels, **kw)
        args = (x, cls if last.out_shape.cls_tokens else None)
    else:
        assert piece.stage is not None
        stage, c_in, after_tokens = _stage_inputs(plan)[piece.stage]
        family = FAMILIES.get(stage.family)
        if piece.kind == "stage":
            embed = EMBEDS.get(stage.embed.kind).build(stage.embed, c_in, stage.dim, plan.spec.norm_eps)
            inner = (
                [] if stage.family in BLOCK_INPUT else [family.block(b, build_mixer) for b in stage.blocks]
            )
            module = family.stage(stage, embed, inner)
            in_shape = FeatureShape(c_in, stage.in_shape.height, stage.in_shape.width)
            args = (_map_input(in_shape, batch, after_tokens, **kw), None)
        else:
            assert piece.block is not None
            block = stage.blocks[piece.block]
            module = family.block(block, build_mixer)
            shape = block.in_shape
            if BLOCK_INPUT[stage.family] == "map":
                args = (_map_input(shape, batch, False, **kw),)
            elif _viewed_tokens(block):
                fmap = torch.randn(batch, block.dim_in, shape.height * shape.width, **kw)
                args = (fmap.transpose(1, 2), (shape.height, shape.width))
            else:
                args = (torch.randn(batch, shape.tokens, block.dim_in, **kw), (shape.height, shape.width))
    module = module.eval().to(device=device, dtype=dtype)
    return (lambda: module(*args)), module


def measure_piece(
    piece: Piece,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 1,
    threads: int | None = None,
    warmup: int = 10,
    runs: int = 30,
) -> PieceTiming:
    """Build ``piece`` alone and time it with the latency harness
    (:func:`~archsearch.cost.time_call`: warm-up, median, IQR, fixed threads), in the setting a
    whole model is timed in (same device, dtype, batch, threads, memory layout of its inputs).

    Raises:
        ValueError: an unknown dtype or ``runs < 4``.
        RuntimeError: CUDA asked for where there is none.
    """
    torch_dt = torch_dtype(dtype)
    dev = torch.device(device)
    torch.manual_seed(0)
    call, module = _piece_call(piece, batch, dev, torch_dt)
    result = time_call(
        call, device=device, dtype=dtype, batch=batch, warmup=warmup, runs=runs, threads=threads
    )
    weights = sum(t.numel() for t in module.parameters()) + sum(t.numel() for t in module.buffers())
    return PieceTiming(piece.key, piece.what, result, weights)
