"""How a search shows its progress: a live bar on a terminal, plain lines anywhere else.

Both follow :class:`archsearch.search.SearchProgress`. :class:`BarProgress` (rich) draws trials
done/total with elapsed time and ETA, the running trial and its epoch, and the best trial so far;
it starts drawing at the search's first event, so errors found before (a missing file, a storage
that cannot be opened) are printed before any bar. :class:`LineProgress` prints one line per event
(a trial started, each epoch, a trial finished with the study's count and the ETA, the best trial
so far when it changes): for logs, pipes, CI and ``archsearch worker`` (whose lines name the worker).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from ..search import TrialCounts

__all__ = ["BarProgress", "LineProgress", "best_line", "fmt", "millions", "mixers_of"]


def fmt(metric: str, value: float) -> str:
    """An objective's value as people read it: accuracy to 4 places, MACs and params in millions
    (:func:`millions`)."""
    if metric.endswith("accuracy"):
        return f"{value:.4f}"
    if metric in ("macs", "params"):
        return millions(value)
    return f"{value:.3g}"


def millions(value: float, places: int = 2) -> str:
    """``value`` in millions to ``places`` places (``12.35M``), or to 3 significant digits where
    those places would show it as 0 (``0.00333M`` for 3,330, not ``0.00M``)."""
    if value == 0 or abs(value) >= 10 ** (6 - places):
        return f"{value / 1e6:,.{places}f}M"
    return f"{value / 1e6:.3g}M"


def mixers_of(params: dict[str, Any]) -> str:
    """The mixers a trial's parameters chose, ``conv·attention``, or how many choices it made."""
    mixers = [str(v) for k, v in params.items() if k.endswith(".mixer")]
    return "·".join(mixers) if mixers else f"{len(params)} choices"


def best_line(study: Any, objectives: list[Any], counts: TrialCounts) -> str | None:
    """``best so far (N on the front): trial 7: accuracy 0.9612, macs 1.20M``: the front's best
    trial on the first objective (duplicates never count), or None before there is one."""
    from ..search import outcome_of

    try:
        best = [t for t in study.best_trials if outcome_of(t) == "complete"]
    except Exception:  # no complete trial yet
        return None
    if not best:
        return None
    sign = 1 if objectives[0].sense == "maximize" else -1
    top = max(best, key=lambda t: t.values[0] * sign)
    values = ", ".join(f"{o.metric} {fmt(o.metric, v)}" for o, v in zip(objectives, top.values, strict=True))
    return f"best so far ({counts.front} on the front): trial {top.number}: {values}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class BarProgress:
    """Trials done/total with ETA, the running trial, and the best so far (rich, on a terminal)."""

    def __init__(self, objectives: list[Any], console: Console):
        self.objectives, self.console = objectives, console
        self.bar = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.status = Text("")
        self.best = Text("")
        self.live: Live | None = None
        self.task = self.bar.add_task("trials", total=1)
        self.current: dict[str, Any] = {}
        self.study: Any = None

    def __enter__(self) -> BarProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def note(self, text: str) -> None:
        self.console.print(escape(text), highlight=False, soft_wrap=True)

    def start(self, total: int, counts: TrialCounts, study: Any) -> None:
        if self.live is None:  # drawn from the first event on: earlier errors come before any bar
            self.live = Live(
                Group(self.bar, self.status, self.best),
                console=self.console,
                refresh_per_second=4,
                transient=False,
            )
            self.live.__enter__()
        self.study = study
        self.bar.update(self.task, total=total, completed=min(counts.evaluated, total))
        self._best(counts)

    def trial_started(self, number: int, params: dict[str, Any], costs: dict[str, float]) -> None:
        what = mixers_of(params)
        self.current = {"number": number, "what": what, "macs": costs.get("macs", 0)}
        self.status.plain = f"running trial {number}: {what}, {costs.get('macs', 0) / 1e6:.1f}M MACs"

    def epoch(self, number: int, epoch: int, accuracy: float) -> None:
        self.status.plain = (
            f"running trial {number}: {self.current.get('what', '')}, "
            f"{self.current.get('macs', 0) / 1e6:.1f}M MACs - epoch {epoch}: accuracy {accuracy:.3f}"
        )

    def trial_finished(self, trial: Any, counts: TrialCounts) -> None:
        evaluated = counts.evaluated
        self.bar.update(self.task, completed=min(evaluated, self.bar.tasks[0].total or evaluated))
        outcome = trial.user_attrs.get("outcome")
        if outcome != "complete":
            reason = trial.user_attrs.get("reason") or ""
            self.status.plain = f"trial {trial.number} {outcome}" + (f": {reason[:150]}" if reason else "")
        self._best(counts)

    def waiting(self, taken: int, budget: int) -> None:
        self.status.plain = f"waiting: the last {taken} of {budget} trials are running on other workers"

    def _best(self, counts: TrialCounts) -> None:
        line = best_line(self.study, self.objectives, counts)
        if line:
            self.best.plain = line


class LineProgress:
    """One plain line per event, for output that is not a terminal; ``prefix`` (a worker's
    ``host:pid``) starts every line, so several workers can share a log."""

    def __init__(self, objectives: list[Any], console: Console, prefix: str | None = None):
        self.objectives, self.console, self.prefix = objectives, console, prefix
        self.total = 0
        self.study: Any = None
        self.started = time.monotonic()
        self.done_before = 0
        self.last_best: str | None = None

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def say(self, text: str) -> None:
        """Print one line (with the prefix), at once."""
        line = f"[{self.prefix}] {text}" if self.prefix else text
        self.console.print(escape(line), highlight=False, soft_wrap=True)
        self.console.file.flush()

    def note(self, text: str) -> None:
        self.say(text)

    def start(self, total: int, counts: TrialCounts, study: Any) -> None:
        self.total, self.study = total, study
        self.started, self.done_before = time.monotonic(), counts.evaluated
        self.say(f"study {study.study_name}: {min(counts.evaluated, total)}/{total} evaluated")

    def trial_started(self, number: int, params: dict[str, Any], costs: dict[str, float]) -> None:
        self.say(f"trial {number} started: {mixers_of(params)}, {costs.get('macs', 0) / 1e6:.1f}M MACs")

    def epoch(self, number: int, epoch: int, accuracy: float) -> None:
        self.say(f"trial {number} epoch {epoch}: accuracy {accuracy:.4f}")

    def eta(self, counts: TrialCounts) -> str | None:
        """Time left: this run's mean time per evaluated trial times the trials left."""
        done = counts.evaluated - self.done_before
        left = self.total - counts.evaluated
        if done <= 0 or left <= 0:
            return None
        return _duration((time.monotonic() - self.started) / done * left)

    def trial_finished(self, trial: Any, counts: TrialCounts) -> None:
        outcome = trial.user_attrs.get("outcome")
        values = ", ".join(f"{v:.4g}" for v in trial.values) if trial.values else ""
        reason = trial.user_attrs.get("reason") or ""
        detail = f" [{values}]" if values else (f": {reason[:150]}" if reason else "")
        eta = self.eta(counts)
        tail = f", ETA {eta}" if eta else ""
        self.say(f"trial {trial.number} {outcome}{detail} ({counts.evaluated}/{self.total} evaluated{tail})")
        if self.study is not None:
            best = best_line(self.study, self.objectives, counts)
            if best and best != self.last_best:
                self.last_best = best
                self.say(best)

    def waiting(self, taken: int, budget: int) -> None:
        self.say(f"waiting: the last {taken} of {budget} trials are running on other workers")
