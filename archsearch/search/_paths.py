"""Where an experiment's files are: every relative path is read from the experiment file's folder.

An experiment names files: ``space``, ``data.root``, ``backend.storage`` (a path or a
``sqlite:///relative.db`` URL), ``backend.study_storage`` and ``backend.storage_path`` (Ray),
``run_dir``, ``report``, a latency objective's ``table`` and the ``constraints.latency_ms.table``
of a space written inline (a space file's own is read from that file's folder). A relative path
written in the file is read from the folder of the file, whatever the current directory is, so
``archsearch search work/E.yaml`` and ``archsearch trials E.yaml`` run from ``work/`` find the
same study. A path given on the command line (``run_dir=out``) is read from the current directory,
as the shell completes it; an experiment given as a mapping (the Python API) reads its paths from
the current directory too.

The defaults, ``runs/<name>`` (the study and its storage) and ``reports/<name>``, live in the
experiment's *project folder*: the folder of the experiment file, or its parent when that folder
is called ``experiments`` (``experiments/quickstart.yaml`` -> ``runs/quickstart`` and
``reports/quickstart`` beside ``experiments/``, as in this repository).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core import shown

__all__ = ["PATH_KEYS", "describe_document", "project_folder", "resolve_paths", "shown"]

#: The keys of an experiment that hold file paths (resolved by :func:`resolve_paths`).
PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("space",),
    ("data", "root"),
    ("backend", "storage"),
    ("backend", "study_storage"),
    ("backend", "storage_path"),
    ("run_dir",),
    ("report",),
)


def project_folder(file: Path | None) -> Path:
    """Where ``runs/`` and ``reports/`` go by default: the experiment file's folder, or its parent
    when the folder is named ``experiments``; the current directory without a file."""
    if file is None:
        return Path.cwd()
    folder = file.resolve().parent
    return folder.parent if folder.name == "experiments" else folder


def _absolute(value: str, base: Path) -> str:
    """``value`` (a path, a ``sqlite:///`` URL or another URL) with a relative path made absolute
    from ``base``; ``~`` is expanded, other URLs are left as they are."""
    if value.startswith("sqlite:///"):
        rest = value.removeprefix("sqlite:///")
        if not rest or rest.startswith("/") or rest == ":memory:":
            return value
        return "sqlite:///" + os.path.normpath(base / Path(rest).expanduser())
    if "://" in value or not value.strip():
        return value
    return os.path.normpath(base / Path(value).expanduser())  # an absolute value stays as it is


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``data`` (an experiment mapping, not yet validated) with the relative paths of
    :data:`PATH_KEYS` made absolute from the folder ``base``; values that are not strings are
    left for the schema to report."""
    out = dict(data)
    for key in PATH_KEYS:
        holder: Any = out
        for part in key[:-1]:
            if not isinstance(holder.get(part), dict):
                holder = None
                break
            holder[part] = dict(holder[part])
            holder = holder[part]
        if holder is not None and isinstance(holder.get(key[-1]), str):
            holder[key[-1]] = _absolute(holder[key[-1]], base)
    if isinstance(out.get("objectives"), list):  # a latency objective's table file
        out["objectives"] = [
            {**o, "table": _absolute(o["table"], base)}
            if isinstance(o, dict) and isinstance(o.get("table"), str)
            else o
            for o in out["objectives"]
        ]
    space = out.get("space")  # an inline space's latency table: read from this file's folder too
    bound: Any = space.get("constraints") if isinstance(space, dict) else None
    latency = bound.get("latency_ms") if isinstance(bound, dict) else None
    if isinstance(space, dict) and isinstance(latency, dict) and isinstance(latency.get("table"), str):
        latency = {**latency, "table": _absolute(latency["table"], base)}
        out["space"] = {**space, "constraints": {**bound, "latency_ms": latency}}
    return out


def _has_choices(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k in value for k in ("choice", "int", "float")) or any(
            _has_choices(v) for v in value.values()
        )
    if isinstance(value, list):
        return any(_has_choices(v) for v in value)
    return False


def describe_document(data: Any, file: Path | None) -> tuple[str, str | None] | None:
    """What a document given as an experiment really is, when it is a spec or a search space:
    ``(message, hint)``, the hint being an experiment that would search it; ``None`` otherwise."""
    if not isinstance(data, dict) or "objectives" in data or "stages" not in data:
        return None
    if not (_has_choices(data) or "constraints" in data):
        return (
            "this is an architecture spec (one network, no choices), not an experiment: "
            "`archsearch validate`, `compile` and `profile` take it; to search around it, turn some "
            "of its values into choices ({choice: [...]}) and name that space in an experiment's `space:`",
            None,
        )
    where = shown(file) if file is not None else "SPACE.yaml"
    hint = "\n".join(
        [
            "# an experiment that searches this space: save it as e.g. my-search.yaml in this",
            "# folder and run `archsearch search my-search.yaml` (see experiments/ for more)",
            f"space: {where}",
            "data: {kind: digits}     # or {kind: cifar10, root: ...}, {kind: imagefolder, root: ...}",
            "evaluator: {kind: train, epochs: 5}",
            "objectives:",
            "  - {metric: accuracy, direction: maximize}",
            "  - {metric: macs, direction: minimize}",
            "trials: 20",
        ]
    )
    return (
        "this is a search space, not an experiment: an experiment names a space and says how to "
        "search it (data, evaluator, objectives, budget)",
        hint,
    )
