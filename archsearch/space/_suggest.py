"""The "suggest" interface a search space samples through.

A space never talks to Optuna or Ray directly: it asks a :class:`Suggest` for one categorical,
integer or real value per named dimension. Optuna's ``Trial`` (through :class:`OptunaSuggest`),
a seeded random generator, a fixed set of parameters (to replay a stored trial) and the
defaults (first option, lower bound) all satisfy it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import Issue, SpecError

__all__ = ["DefaultSuggest", "FixedSuggest", "OptunaSuggest", "RandomSuggest", "Scalar", "Suggest"]

Scalar = None | bool | int | float | str


class Suggest(Protocol):
    """One value per named dimension; the same name always has the same domain."""

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar: ...

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...


class OptunaSuggest:
    """Suggest through an ``optuna.Trial`` (or anything with its ``suggest_*`` methods)."""

    def __init__(self, trial: Any):
        self.trial = trial

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        return self.trial.suggest_categorical(name, list(choices))

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self.trial.suggest_int(name, low, high, step=step, log=log))

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self.trial.suggest_float(name, low, high, step=step, log=log))


class RandomSuggest:
    """Uniform draws (log-uniform where asked) from a seeded NumPy generator."""

    def __init__(self, seed: int | np.random.Generator | None = None):
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        return choices[int(self.rng.integers(len(choices)))]

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if log:
            return int(
                min(
                    high, max(low, round(math.exp(self.rng.uniform(math.log(low), math.log(high + 1)) - 0.5)))
                )
            )
        return low + step * int(self.rng.integers((high - low) // step + 1))

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if step is not None:
            return low + step * int(self.rng.integers(round((high - low) / step) + 1))
        if log:
            return float(math.exp(self.rng.uniform(math.log(low), math.log(high))))
        return float(self.rng.uniform(low, high))


class DefaultSuggest:
    """The first option and the lower bound everywhere, except the values in ``overrides``."""

    def __init__(self, overrides: Mapping[str, Any] | None = None):
        self.overrides = dict(overrides or {})

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        return self.overrides.get(name, choices[0])

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self.overrides.get(name, low))

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self.overrides.get(name, low))


class FixedSuggest:
    """Replay stored parameters (a trial's ``params``); a missing or out-of-domain one is an error."""

    def __init__(self, params: Mapping[str, Any]):
        self.params = dict(params)
        self.used: set[str] = set()

    def _get(self, name: str) -> Any:
        if name not in self.params:
            known = ", ".join(sorted(self.params)) or "none"
            raise SpecError(Issue((), f"the parameters have no value for {name!r}", allowed=known))
        self.used.add(name)
        return self.params[name]

    def categorical(self, name: str, choices: Sequence[Scalar]) -> Scalar:
        value = self._get(name)
        if value not in choices:
            raise SpecError(Issue((), f"parameter {name!r} is not one of its options", value, _list(choices)))
        return value

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SpecError(Issue((), f"parameter {name!r} is out of its range", value, f"{low}..{high}"))
        return value

    def real(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        value = self._get(name)
        if not isinstance(value, int | float) or not low <= value <= high:
            raise SpecError(Issue((), f"parameter {name!r} is out of its range", value, f"{low}..{high}"))
        return float(value)


def _list(choices: Sequence[Scalar]) -> str:
    return ", ".join(str(c) for c in choices)
