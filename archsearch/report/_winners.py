"""Pareto members back out as YAML specs that ``archsearch compile`` rebuilds exactly."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from ._compute import ReportData
from ._format import choice_name, format_metric, format_value, is_missing

__all__ = ["command_path", "write_winners"]


def command_path(path: Path) -> str:
    """``path`` as a command typed where the user stands should name it: relative to the working
    folder when it lies below it, else absolute; quoted for the shell where it needs quoting."""
    full = path.resolve()
    try:
        shown = str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(full)
    return shlex.quote(shown if os.sep == "/" else shown.replace(os.sep, "/"))


def _header(data: ReportData, row: Any, path: Path) -> str:
    trial = int(row["trial"])
    objectives = ", ".join(f"{o.metric} {o.direction[:3]}" for o in data.objectives)
    lines = [
        f"{data.results.study_name}, trial {trial}: on the Pareto front ({objectives})",
        "  ".join(f"{m} {format_metric(m, row[m])}" for m in data.metrics if not is_missing(row[m])),
        f"mixers {row['mixers']}; spec_hash {row['spec_hash']}"
        + (f"; the zoo's {row['zoo']}" if row.get("zoo") else ""),
        f"dataset {data.results.dataset}, input {data.results.input_size[0]}x{data.results.input_size[1]}",
    ]
    choices = [f"  {choice_name(c)}: {format_value(row[c])}" for c in data.choices if not is_missing(row[c])]
    if choices:
        lines += ["choices:", *choices]
    lines.append(f"rebuild: archsearch compile {command_path(path)}")
    return "".join(f"# {line}\n" for line in lines)


def write_winners(data: ReportData, out_dir: Path) -> list[Path]:
    """One YAML per Pareto member, named ``<study>-t<trial>.yaml``, with its metrics as comments
    and the command that rebuilds it, its path as :func:`command_path` gives it (from where the
    report is written).

    The body is the trial's concrete spec as the search stored it (renamed after the file); a spec
    whose YAML would not hash back to the trial's ``spec_hash`` is noted in the report.
    """
    from ..spec import spec_from_dict, spec_hash, spec_yaml

    written = []
    for _, row in data.front.iterrows():
        trial = int(row["trial"])
        relative = data.winner_files[trial]
        path = out_dir / relative
        if not isinstance(row["spec"], str):
            data.notes.append(f"Trial {trial} is on the front but has no spec: {relative} is not written.")
            continue
        spec: dict[str, Any] = json.loads(row["spec"])
        body = spec_yaml(spec, path.stem)
        try:
            same = spec_hash(spec_from_dict(yaml.safe_load(body))) == row["spec_hash"]
        except SpecError as exc:
            data.notes.append(f"{relative} does not validate: {str(exc).splitlines()[0]}")
            same = True
        if not same and not is_missing(row["spec_hash"]):
            data.notes.append(f"{relative} does not hash to trial {trial}'s spec_hash {row['spec_hash']}.")
        path.write_text(_header(data, row, path) + body, encoding="utf-8")
        written.append(path)
    return written
