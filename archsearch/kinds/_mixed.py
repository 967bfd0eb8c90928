"""Stages whose blocks use different mixers: ``mixer: [{kind: conv}, {kind: mhsa, heads: 4}]``.

A stage's ``mixer`` may be a list of ``depth`` mixers, block ``j`` taking item ``j``, as every
other per-block value of the grammar (a list of length ``depth``). Twins-SVT alternates locally
grouped and global sub-sampled attention in one stage (Chu et al., NeurIPS 2021); timm's
BoTNet-26t, HaloNet-26t and LambdaResNet-26t end their third stage with one attention block
(``timm/models/byobnet.py``, ``interleave_blocks``). The rules, checked here with the YAML path of
the item at fault:

* every item belongs to the stage's family (``block``, else the first item's family);
* only mixers without stage-level hooks (:meth:`~archsearch.kinds.MixerKind.prepare`,
  ``stage_out``, ``stage_cost``: MobileViT's fold/unfold) can be one block's;
* an item is one block's alone: none of its fields is a list;
* ``pos_embed``, when the stage gives it, must fit every item; else each block takes its own
  mixer's default (a conv block ``none``, an MHSA block ``relative``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core import BlockPlan, CheckContext, Path, StagePlan
from ._base import MixerKind
from ._registry import MIXERS
from ._tables import FAMILY_MIXERS

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BlockMixer", "build_mixer", "canonical_mixers", "mixable", "resolve_mixers"]


class BlockMixer(NamedTuple):
    """One block's mixer in a stage with a per-block mixer list."""

    kind: MixerKind
    mixer: Any
    """The item with its per-block values resolved for this block (e.g. a window's ``shift``)."""
    pos_embed: str


def mixable(kind: MixerKind) -> bool:
    """Whether ``kind`` can be one block's mixer in a per-block mixer list: it has no stage-level
    hook (``prepare``, ``stage_out``, ``stage_cost``), which would act on the whole stage."""
    hooks = ("prepare", "stage_out", "stage_cost")
    return all(getattr(type(kind), hook) is getattr(MixerKind, hook) for hook in hooks)


def resolve_mixers(
    ctx: CheckContext, path: Path, stage: Any, depth: int, family: str, named: bool
) -> tuple[BlockMixer, ...] | None:
    """Each block's mixer of a stage whose ``mixer`` is a list, or ``None`` after reporting what
    is wrong (:class:`CheckContext`). ``path``: the stage's YAML path; ``family``: the stage's
    block family (``named``: from its ``block`` key, else from the first item)."""
    items = stage.mixer
    if len(items) != depth:
        ctx.fail(
            (*path, "mixer"),
            f"a per-block mixer list needs exactly depth={depth} items, one per block",
            value=[item.kind for item in items],
            allowed=f"a list of {depth} mixer{'s' if depth != 1 else ''}, or one mixer for every block",
        )
        return None
    allowed = ", ".join(n for n in FAMILY_MIXERS[family] if mixable(MIXERS.get(n)))
    why = f"its block: {family}" if named else f"block 0's mixer {items[0].kind!r}"
    out: list[BlockMixer] = []
    for j, item in enumerate(items):
        kind = MIXERS.get(item.kind)
        where = (*path, "mixer", j)
        if kind.name not in FAMILY_MIXERS[family]:
            ctx.fail(
                (*where, "kind"),
                f"block {j}'s mixer {kind.name!r} is a {kind.family} mixer, but this stage's blocks "
                f"are {family} blocks ({why})",
                value=kind.name,
                allowed=allowed,
            )
            continue
        if not mixable(kind):
            ctx.fail(
                (*where, "kind"),
                f"block {j}'s mixer {kind.name!r} acts on the whole stage, so it cannot be one "
                "block's in a per-block mixer list",
                value=kind.name,
                allowed=f"one {kind.name!r} mixer for the stage, or per-block mixers among: {allowed}",
            )
            continue
        lists = [name for name, value in item.__dict__.items() if isinstance(value, list)]
        for name in lists:
            ctx.fail(
                (*where, name),
                f"a mixer in a per-block mixer list is block {j}'s alone: {name} takes one value",
                value=getattr(item, name),
                allowed=f"one value (give the stage one {kind.name!r} mixer to vary {name} per block)",
            )
        pos_embed = stage.pos_embed or kind.pos_embeds[0]
        if pos_embed not in kind.pos_embeds:
            ctx.fail(
                (*path, "pos_embed"),
                f"position embedding {pos_embed!r} does not fit block {j}'s mixer {kind.name!r}",
                value=pos_embed,
                allowed=", ".join(kind.pos_embeds) + " (or leave it out: each block takes its mixer's)",
            )
        if lists or ctx.issues:
            continue
        values = kind.per_block_values(ctx, path, stage.model_copy(update={"mixer": item}), depth)
        update = {name: vals[j] for name, vals in values.items() if vals is not None}
        out.append(BlockMixer(kind, item.model_copy(update=update) if update else item, pos_embed))
    return None if ctx.issues else tuple(out)


def build_mixer(block: BlockPlan) -> nn.Module:
    """The mixer module of ``block``, by its own mixer's kind (stages may mix kinds)."""
    return MIXERS.get(block.mixer.kind).build(block)


def canonical_mixers(items: list[dict[str, Any]], stage: StagePlan) -> Any:
    """The canonical data (:func:`archsearch.spec.spec_hash`) of a per-block mixer list: each
    block's resolved mixer through its kind's ``canonical`` (on a one-block view of the stage);
    a list whose blocks all resolve alike is written as one mixer (``[conv, conv]`` hashes as
    ``conv``)."""
    out = []
    for block in stage.blocks:
        one = dataclasses.replace(stage, depth=1, blocks=(block,))
        out.append(MIXERS.get(block.mixer.kind).canonical(block.mixer.model_dump(mode="json"), one))
    return out[0] if all(o == out[0] for o in out) else out
