"""Everything derived from the registry: the schema union of mixers and the family tables the
normaliser, the search space and the docs read. Nothing here is written by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import Field

from ._registry import EMBEDS, FAMILIES, MIXERS, STEMS

__all__ = [
    "FAMILY_ACT",
    "FAMILY_EMBEDS",
    "FAMILY_EXPANSION",
    "FAMILY_MIXERS",
    "FAMILY_MLP_RATIO",
    "FAMILY_ONLY_FIELDS",
    "MIXER_FAMILY",
    "MIXER_POS_EMBEDS",
    "PER_BLOCK_MIXER_FIELDS",
    "Embed",
    "FamilyName",
    "Mixer",
    "Stem",
]

for _mixer in MIXERS.values():  # a registration mistake fails at import, not in a user's spec
    if _mixer.schema.model_fields["kind"].default != _mixer.name:
        raise RuntimeError(f"mixer {_mixer.name!r}: its schema's kind is not {_mixer.name!r}")
    if _mixer.family not in FAMILIES:
        raise RuntimeError(f"mixer {_mixer.name!r}: unknown family {_mixer.family!r}")

for _what, _kinds in (("stem", STEMS.values()), ("embedding", EMBEDS.values())):
    for _kind in _kinds:
        if _kind.schema.model_fields["kind"].default != _kind.name:
            raise RuntimeError(f"{_what} {_kind.name!r}: its schema's kind is not {_kind.name!r}")
for _family in FAMILIES.values():
    for _embed in _family.embeds:
        if _embed not in EMBEDS:
            raise RuntimeError(f"family {_family.name!r}: unknown embedding {_embed!r}")

if TYPE_CHECKING:  # built at run time from the registry; a checker sees any mixer model
    Mixer: TypeAlias = Any
    FamilyName: TypeAlias = str
    Stem: TypeAlias = Any
    Embed: TypeAlias = Any
else:
    #: ``stages[i].mixer``: one of the registered mixers' schemas, chosen by ``kind``.
    Mixer = Annotated[Union[tuple(m.schema for m in MIXERS.values())], Field(discriminator="kind")]  # noqa: UP007
    #: ``stages[i].block``: a registered family's name.
    FamilyName = Literal[FAMILIES.names()]
    #: ``spec.stem``: one of the registered stems' schemas, chosen by ``kind``.
    Stem = Annotated[Union[tuple(k.schema for k in STEMS.values())], Field(discriminator="kind")]  # noqa: UP007
    #: ``stages[i].embed``: one of the registered embeddings' schemas, chosen by ``kind``.
    Embed = Annotated[Union[tuple(k.schema for k in EMBEDS.values())], Field(discriminator="kind")]  # noqa: UP007

#: Which mixer kinds each block family accepts, and which family a mixer implies.
FAMILY_MIXERS: dict[str, tuple[str, ...]] = {
    f: tuple(m.name for m in MIXERS.values() if m.family == f) for f in FAMILIES
}
#: The family each mixer kind implies when a stage names none.
MIXER_FAMILY: dict[str, str] = {m.name: m.family for m in MIXERS.values()}
#: Which position embeddings each mixer accepts; the first is the default.
MIXER_POS_EMBEDS: dict[str, tuple[str, ...]] = {m.name: m.pos_embeds for m in MIXERS.values()}
#: Mixer fields that may be given per block (a list of length ``depth``).
PER_BLOCK_MIXER_FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys(name for m in MIXERS.values() for name in m.per_block_fields)
)
#: Which embeddings each family accepts.
FAMILY_EMBEDS: dict[str, tuple[str, ...]] = {f.name: f.embeds for f in FAMILIES.values()}
#: Per-family defaults of the stage keys that mean something to the family.
FAMILY_ACT: dict[str, str] = {f.name: f.act for f in FAMILIES.values()}
FAMILY_MLP_RATIO: dict[str, float] = {
    f.name: f.mlp_ratio for f in FAMILIES.values() if f.mlp_ratio is not None
}
FAMILY_EXPANSION: dict[str, int] = {f.name: f.expansion for f in FAMILIES.values() if f.expansion is not None}
#: Stage keys that only some families use: key -> (those families, the value meaning "unset").
FAMILY_ONLY_FIELDS: dict[str, tuple[tuple[str, ...], Any]] = {
    "mlp_ratio": (tuple(FAMILY_MLP_RATIO), None),
    **{
        name: (tuple(f.name for f in FAMILIES.values() if name in f.stage_fields), False)
        for name in ("cls_token", "dist_token")
    },
    "expansion": (tuple(FAMILY_EXPANSION), None),
    **{
        name: (tuple(f.name for f in FAMILIES.values() if name in f.stage_fields), False)
        for name in ("mlp_dwconv", "norm_out")
    },
    "peg": (tuple(f.name for f in FAMILIES.values() if "peg" in f.stage_fields), None),
}
