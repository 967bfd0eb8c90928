"""Which supernet tensor each tensor of a member uses, and which slice of it.

A member is an ordinary :func:`archsearch.build` model. Each of its learned tensors (parameters
that require grad, and BatchNorm running statistics) is a slice of one *slot* of the supernet. A
slot is named by the set of weights its owner selects (the owner's kinds and structural fields,
:meth:`archsearch.kinds.Share.tag`), its place (stage, block position) and the tensor's name in
the owner; its shape is the largest any member needs. Tensors that are not learned (sinusoidal
tables, index buffers) are the member's own: they depend only on its plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core import BlockPlan, NormalizedSpec, StagePlan
from ..kinds import EMBEDS, FAMILIES, MIXERS, STEMS

__all__ = ["Use", "member_uses", "take"]


@dataclass(frozen=True)
class Use:
    """One learned tensor of a member: its name there, its slot and how it is cut from the slot."""

    name: str
    """Key in the member's ``state_dict``."""
    slot: str
    """Key of the supernet slot."""
    shape: tuple[int, ...]
    """The member tensor's shape."""
    centre: tuple[bool, ...]
    """Per axis: take the centre (kernels, relative-position tables) rather than the leading part."""
    grid: tuple[int, int] | None = None
    """For an absolute position table ``(1, h*w, C)``: the member's map ``(h, w)``; the slot is
    then cut as a ``(H, W)`` grid (its centre), not as a list of rows."""
    buffer: bool = False
    """A running statistic (BatchNorm), not a parameter."""


def _fields(model: Any) -> dict[str, Any]:
    return {k: getattr(model, k) for k in type(model).model_fields}


def _block_tag(block: BlockPlan) -> str:
    family = FAMILIES.get(block.family).share.tag(
        block.family,
        {
            "act": block.act,
            "mlp_dwconv": block.mlp_dwconv,
            "dim": block.dim,
            "mlp_ratio": block.mlp_ratio,
            "expansion": block.expansion,
            "stride": block.stride,
        },
    )
    kind = block.mixer.kind
    return f"{family}/{MIXERS.get(kind).share.tag(kind, _fields(block.mixer))}"


def _owner(plan: NormalizedSpec, name: str) -> tuple[str, str, tuple[str, ...], StagePlan | None]:
    """``(tag of the owner's weights, the tensor's name in the owner, centre-table names, stage)``."""
    parts = name.split(".")
    if parts[0] == "stem":
        stem = plan.spec.stem
        assert stem is not None
        share = STEMS.get(stem.kind).share
        return f"stem:{share.tag(stem.kind, _fields(stem))}", ".".join(parts[1:]), share.centre, None
    if parts[0] == "head":
        head = plan.head
        tag = f"head(norm={head.norm},pool={head.pool},conv={head.conv is not None})"
        return tag, ".".join(parts[1:]), (), None
    assert parts[0] == "stages", name
    stage = plan.stages[int(parts[1])]
    if parts[2] == "embed":
        embed = stage.embed
        share = EMBEDS.get(embed.kind).share
        tag = f"s{stage.index}.embed:{share.tag(embed.kind, _fields(embed))}"
        return tag, ".".join(parts[3:]), share.centre, stage
    if parts[2] == "blocks":
        block = stage.blocks[int(parts[3])]
        centre = MIXERS.get(block.mixer.kind).share.centre
        return f"s{stage.index}.b{parts[3]}:{_block_tag(block)}", ".".join(parts[4:]), centre, stage
    rest = ".".join(parts[2:])
    if rest == "pos_embed":  # one table per kind of position embedding, used or not
        rest = f"pos_embed[{stage.pos_embed}]"
    first = stage.blocks[0] if stage.blocks else None
    inner = _block_tag(first) if first is not None else stage.family
    return f"s{stage.index}:{inner}", rest, (), stage


def member_uses(plan: NormalizedSpec, model: nn.Module) -> list[Use]:
    """The learned tensors of ``model`` (built from ``plan``) and the slots they come from, in
    ``state_dict`` order."""
    learned = {n for n, p in model.named_parameters() if p.requires_grad}
    stats = {
        f"{m}.{b}" if m else b
        for m, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for b, _ in module.named_buffers(recurse=False)
    }
    uses = []
    for name, tensor in model.state_dict().items():
        if name not in learned and name not in stats:
            continue
        tag, rest, centre_names, stage = _owner(plan, name)
        shape = tuple(tensor.shape)
        conv = len(shape) == 4
        last = rest.rsplit(".", 1)[-1]
        centre = tuple((conv and axis >= 2) or last in centre_names for axis in range(len(shape)))
        grid = None
        if rest.startswith("pos_embed[") and stage is not None and len(shape) == 3:
            h, w = stage.embed_shape.height, stage.embed_shape.width
            grid = (h, w) if shape[1] == h * w else None
        uses.append(Use(name, f"{tag}|{rest}", shape, centre, grid, buffer=name in stats))
    return uses


def take(full: torch.Tensor, use: Use, full_grid: tuple[int, int] | None) -> torch.Tensor:
    """The member's slice of the slot tensor ``full`` (a view where the cut allows, so gradients
    and running-statistic updates reach the slot). ``full_grid``: the slot's map for a position
    table."""
    tensor = full
    if use.grid is not None and full_grid is not None and full.shape[1] == full_grid[0] * full_grid[1]:
        (big_h, big_w), (h, w) = full_grid, use.grid
        top, left = (big_h - h) // 2, (big_w - w) // 2
        grid = full.reshape(full.shape[0], big_h, big_w, full.shape[2])[:, top : top + h, left : left + w]
        tensor = grid[..., : use.shape[2]].reshape(use.shape)
        return tensor
    index = []
    for size, want, centre in zip(full.shape, use.shape, use.centre, strict=True):
        start = (size - want) // 2 if centre else 0
        index.append(slice(start, start + want))
    return tensor[tuple(index)]
