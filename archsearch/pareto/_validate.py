"""Argument checks shared by the Pareto functions, and the turn to minimisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

__all__ = ["Direction", "check_reference", "check_values"]

Direction = Literal["minimize", "maximize"]
"""How an objective is optimised, spelt as Optuna spells it."""

_DIRECTIONS: tuple[str, ...] = get_args(Direction)


def check_values(
    values: npt.ArrayLike, directions: Sequence[Direction], *, allow_nan_rows: bool = False
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Check ``values`` against ``directions``; return them minimised and the per-objective sign.

    Maximised objectives are negated, so every caller works on "smaller is better". With
    ``allow_nan_rows`` a row may hold NaN (a failed trial); infinities are never allowed.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"`values` must be numeric, of shape (n_points, n_objectives), but got {err}"
        ) from None
    if array.ndim != 2:
        raise ValueError(
            f"`values` must be a 2-D array of shape (n_points, n_objectives), but got shape {array.shape}"
        )
    n_objectives = array.shape[1]
    if n_objectives == 0:
        raise ValueError(f"`values` must have at least one objective (column), but got shape {array.shape}")
    sign = _signs(directions, n_objectives)
    bad = np.isinf(array) if allow_nan_rows else ~np.isfinite(array)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        hint = (
            "" if allow_nan_rows else "; drop failed trials first, e.g. values[~np.isnan(values).any(axis=1)]"
        )
        raise ValueError(
            f"`values` must be finite{' or NaN' if allow_nan_rows else ''}, "
            f"but got {array[row, col]} at row {row}, column {col}{hint}"
        )
    # `+ 0.0` turns the -0.0 that negation makes into 0.0, so equal points compare and hash equal.
    return array * sign + 0.0, sign


def check_reference(reference: npt.ArrayLike, n_objectives: int) -> npt.NDArray[np.float64]:
    """The reference point as a finite float vector of one value per objective."""
    try:
        ref = np.asarray(reference, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`reference` must be numeric, but got {err}") from None
    if ref.shape != (n_objectives,):
        raise ValueError(
            f"`reference` must have shape ({n_objectives},), one value per objective, "
            f"but got shape {ref.shape}"
        )
    if not np.isfinite(ref).all():
        raise ValueError(f"`reference` must be finite, but got {ref.tolist()}")
    return ref


def _signs(directions: Sequence[Direction], n_objectives: int) -> npt.NDArray[np.float64]:
    if isinstance(directions, str):
        raise ValueError(
            f"`directions` must be a sequence of directions such as [{directions!r}], but got the string "
            f"{directions!r}"
        )
    directions = list(directions)
    if len(directions) != n_objectives:
        raise ValueError(
            f"`len(directions)` must equal the number of objectives ({n_objectives}), "
            f"but got {len(directions)}"
        )
    for i, direction in enumerate(directions):
        if direction not in _DIRECTIONS:
            raise ValueError(f"`directions[{i}]` must be one of {list(_DIRECTIONS)}, but got {direction!r}")
    return np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
