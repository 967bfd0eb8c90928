"""Loading a search space: from a YAML file, a mapping or a loaded space, with keyword overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import Issue, SpecError
from ..spec import SourceMap, apply_overrides, override_issue, read_yaml_file, zoo_names
from ._space import SearchSpace

__all__ = ["load_space"]


def load_space(
    source: str | os.PathLike[str] | Mapping[str, Any] | SearchSpace, **overrides: Any
) -> SearchSpace:
    """Load a search space from a YAML file or a mapping; ``overrides`` as :func:`~archsearch.load_spec`
    (``num_classes``, ``input_size``, ``in_chans``, ``name``) replace values of the space.

    Raises:
        SpecError: every issue at its file, line and path; one the space has only with an override
            names it as its cause (``<override> input_size=100000: input.size: ...``, without the
            file's line of the value it replaced; see :func:`~archsearch.spec.override_issue`)."""
    if isinstance(source, SearchSpace):
        if not overrides:
            return source
        data, smap, name = source.raw, source.source, source.name
    elif isinstance(source, Mapping):
        data, smap, name = dict(source), SourceMap(), None
    else:
        _refuse_a_name(source)
        data, smap = read_yaml_file(source, "search space", "a search space")
        name = Path(source).stem
    if not isinstance(data, dict):
        raise smap.error((), "a search space is a mapping (a spec with choice nodes)", value=data)
    if not isinstance(source, SearchSpace):
        name = overrides.get("name") or data.get("name") or name
    try:
        return SearchSpace(apply_overrides(data, overrides), smap, name=name)
    except SpecError as exc:
        if not overrides:
            raise
        error = exc
    try:  # an issue the space has only with the overrides is theirs (Issue.cause), as in load_spec
        SearchSpace(data, smap, name=name)
        own: set[str] = set()
    except SpecError as without:
        own = {str(i) for i in without.issues}
    raise SpecError([i if str(i) in own else override_issue(i, overrides) for i in error.issues]) from None


def _refuse_a_name(source: str | os.PathLike[str]) -> None:
    """A bare name that is no file but a zoo model or a shipped space's name is refused saying so
    (``read_yaml_file`` would only say the file does not exist)."""
    if not isinstance(source, str) or os.sep in source or source.endswith((".yaml", ".yml")):
        return
    if Path(source).exists():
        return
    shipped = Path("search_spaces") / f"{source}.yaml"
    if source in zoo_names():
        message = (
            f"no search space file {source!r}: {source} is a zoo model, a concrete spec "
            f"(`archsearch compile {source}` builds it)"
        )
    elif shipped.is_file():
        message = f"no search space file {source!r} (did you mean {str(shipped)!r}?)"
    else:
        return
    raise SpecError(
        Issue((), message, allowed="a search space YAML path, e.g. search_spaces/hybrid_small.yaml")
    )
