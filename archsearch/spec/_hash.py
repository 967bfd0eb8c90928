"""A stable hash of what a spec builds, independent of its name and of how it was written."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..core import NormalizedSpec
from ..kinds import EMBEDS, MIXERS, STEMS, canonical_mixers
from ._normalize import normalize
from ._schema import Spec

__all__ = ["canonical_spec", "spec_hash"]


def canonical_spec(spec: Spec | NormalizedSpec) -> dict[str, Any]:
    """The spec as plain data with every default filled in, ``depths`` folded into the stages and
    the name and ``dynamic_size`` (how the model takes other input sizes, not what it is) dropped:
    two specs that build the same network have the same canonical form.

    Takes the normalised plan where the caller has one (a search candidate carries it), so the
    spec is not normalised again; a bare :class:`Spec` is normalised here (raises ``SpecError``
    when it cannot be)."""
    plan = spec if isinstance(spec, NormalizedSpec) else normalize(spec)
    spec = plan.spec
    data = spec.model_dump(mode="json", exclude={"name", "depths", "dynamic_size"})
    if data.get("stem") is not None:
        data["stem"] = STEMS.get(data["stem"]["kind"]).canonical(data["stem"])
    for stage, resolved in zip(data["stages"], plan.stages, strict=True):
        stage["depth"] = resolved.depth
        stage["block"] = resolved.family
        stage["embed"] = EMBEDS.get(resolved.embed.kind).canonical(resolved.embed.model_dump(mode="json"))
        stage["pos_embed"] = resolved.pos_embed
        stage["act"] = resolved.blocks[0].act
        stage["mlp_ratio"] = (
            [b.mlp_ratio for b in resolved.blocks] if resolved.blocks[0].mlp_ratio is not None else None
        )
        if isinstance(stage["mixer"], list):  # one per block
            stage["mixer"] = canonical_mixers(stage["mixer"], resolved)
        else:
            stage["mixer"] = MIXERS.get(resolved.blocks[0].mixer.kind).canonical(stage["mixer"], resolved)
        stage["expansion"] = resolved.blocks[0].expansion
        if not stage["dist_token"]:  # added for issue 14: earlier spec hashes hold
            del stage["dist_token"]
        if stage["peg"] is None:
            del stage["peg"]
    data["head"]["norm"] = plan.head.norm
    return data


def spec_hash(spec: Spec | NormalizedSpec) -> str:
    """SHA-256 (hex, first 16 characters) of :func:`canonical_spec` of a spec or of its plan."""
    text = json.dumps(canonical_spec(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
