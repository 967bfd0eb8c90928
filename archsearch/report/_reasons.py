"""The trials' outcomes as the search engine names and counts them, and their reasons grouped.

The words are the search engine's (``archsearch trials``, the progress line and the closing
summary print them): ``evaluated`` (``complete``, ``early-stopped``, ``failed``), ``duplicate``,
``rejected``, ``skipped``, ``interrupted``, ``running``, and ``on the front``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ._format import is_missing

__all__ = ["EVALUATED", "OTHER_OUTCOMES", "count_outcomes", "counts_line", "group_reasons", "outcomes"]

#: Outcomes that spent an evaluation, in the order the summary lists them.
EVALUATED = ("complete", "early-stopped", "failed")
#: The other outcomes, in the order the summary lists them (``running`` includes queued trials).
OTHER_OUTCOMES = ("duplicate", "rejected", "skipped", "interrupted", "running")
#: An Optuna state's outcome, for trials stored without an ``outcome`` (by another tool).
_STATE_OUTCOME = {
    "COMPLETE": "complete",
    "PRUNED": "early-stopped",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "running",
}
#: A number in a reason, not one inside a name (``stages.1.mixer``, ``32x32``, ``fc1``).
_NUMBER = re.compile(r"(?<![\w.\[])[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w\]])")
_SLOT = "\x00"
_MAX_LEN = 200


def outcomes(trials: pd.DataFrame) -> list[str]:
    """Each trial's outcome: its ``outcome`` column where set, else its state's."""
    stated = trials.get("outcome", pd.Series([None] * len(trials), index=trials.index))
    return [
        str(o) if not is_missing(o) and str(o) else _STATE_OUTCOME.get(str(s).upper(), str(s).lower())
        for o, s in zip(stated, trials["state"], strict=True)
    ]


def count_outcomes(trials: pd.DataFrame, front: int) -> dict[str, int]:
    """The counts ``archsearch.search.count_trials`` gives, from a trials table: each outcome,
    ``evaluated`` and ``front`` (the members of the front, given)."""
    counts: dict[str, int] = defaultdict(int)
    for outcome in outcomes(trials):
        counts["running" if outcome == "waiting" else outcome] += 1
    counts["evaluated"] = sum(counts[k] for k in EVALUATED)
    counts["front"] = front
    return dict(counts)


def counts_line(counts: Mapping[str, int]) -> str:
    """``"7 trials: 3 evaluated (2 complete, 1 failed), 2 duplicate, 1 rejected; 2 on the front"``:
    word for word the title of ``archsearch trials`` (``TrialCounts.line`` with the total)."""
    evaluated = counts.get("evaluated", 0)
    inner = ", ".join(f"{counts[k]} {k}" for k in EVALUATED if counts.get(k, 0))
    parts = [f"{evaluated} evaluated" + (f" ({inner})" if inner else "")]
    parts += [f"{counts[k]} {k}" for k in OTHER_OUTCOMES if counts.get(k, 0)]
    total = evaluated + sum(counts.get(k, 0) for k in OTHER_OUTCOMES)
    return f"{total} trials: " + ", ".join(parts) + f"; {counts.get('front', 0)} on the front"


def group_reasons(pairs: Iterable[tuple[str, Any]]) -> list[tuple[str, str, int]]:
    """``(outcome, reason)`` pairs -> ``(outcome, reason, trials)``, most frequent first.

    Reasons that differ only in their numbers are one group, and the group keeps its numbers: a
    number the same in all is shown as it is, two or three values as ``3, 7 or 12``, more as a
    range ``0.21–0.34`` (``the same architecture as trial 3 or 7 (complete)``,
    ``constraints: macs 9,120,000–12,800,000 > max 8,000,000``). Only a reason's first line counts.
    """
    groups: dict[tuple[str, str], list[list[str]]] = defaultdict(list)
    for outcome, reason in pairs:
        text = reason.strip().splitlines()[0] if isinstance(reason, str) and reason.strip() else ""
        text = text or "no reason given"
        numbers = [m.group(0) for m in _NUMBER.finditer(text)]
        groups[(outcome, _NUMBER.sub(_SLOT, text))].append(numbers)
    out = []
    for (outcome, template), rows in groups.items():
        parts = template.split(_SLOT)
        slots = [_values(column) for column in zip(*rows, strict=True)]
        text = parts[0] + "".join(value + part for value, part in zip(slots, parts[1:], strict=True))
        out.append((outcome, text if len(text) <= _MAX_LEN else text[: _MAX_LEN - 1] + "…", len(rows)))
    return sorted(out, key=lambda r: (-r[2], r[0], r[1]))


def _values(column: Iterable[str]) -> str:
    distinct = sorted(set(column), key=_number)
    if len(distinct) <= 3:
        return distinct[0] if len(distinct) == 1 else ", ".join(distinct[:-1]) + " or " + distinct[-1]
    return f"{distinct[0]}–{distinct[-1]}"


def _number(text: str) -> float:
    try:
        return float(text.replace(",", ""))
    except ValueError:  # pragma: no cover - the pattern only matches numbers
        return 0.0
