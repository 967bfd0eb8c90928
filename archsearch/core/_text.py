"""Paths as people read them, in messages and progress lines."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shown"]


def shown(path: str | os.PathLike[str]) -> str:
    """A path as a person reads it: relative to the current directory when it is inside it,
    else as given (an absolute path outside the current directory stays absolute)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve())) if p.is_absolute() else str(p)
    except ValueError:
        return str(p)
