"""Whether a file a command is about to write can be written, asked before the work that fills it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["output_file_problem"]


def output_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the file ``path`` cannot be written, or ``None`` when it can.

    Made for the commands that write a file after long work (a latency table, an export, the
    JSON schema): they ask first, so that an unwritable path is one clear error before the work
    instead of an ``OSError`` traceback after it. Missing folders on the way are made, as every
    such writer makes them anyway; then a temporary file is created and removed in the file's
    folder, which finds what permission bits alone do not (a read-only mount, ``/proc``, a
    folder that ``root`` may not write either). The reasons read: ``"is a folder"``, ``"F is a
    file, not a folder"``, ``"cannot make its folder F (REASON)"``, ``"cannot write in its folder
    F (REASON)"``.
    """
    target = Path(path)
    if target.is_dir():
        return "is a folder"
    folder = target.parent
    for step in (*reversed(folder.parents), folder):
        if step.exists() and not step.is_dir():
            return f"{step} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot make its folder {folder} ({exc.strerror or exc})"
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        return f"cannot write in its folder {folder} ({exc.strerror or exc})"
    os.close(handle)
    os.unlink(probe)
    return None
