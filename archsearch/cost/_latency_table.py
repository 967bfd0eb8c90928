"""Latency tables: per-device piece latencies in a JSON file people can share.

A table holds the median time of each piece (:mod:`._pieces`) measured on one device in one
setting, the *fingerprint*: device name (CPU model or GPU name), CPU threads, torch version, dtype,
batch, fused attention on or off, compiled or not. A table is only valid where the fingerprint
matches: :meth:`LatencyTable.load` refuses another machine's table with a message that names both
fingerprints and what differs (Once-for-All keeps one lookup table per device the same way;
nn-Meter one predictor per device).

The file::

    {"format": "archsearch-latency-table", "version": 1,
     "fingerprint": {"device": "cpu (AMD EPYC 7B13)", "threads": 2, "torch": "2.13.0", ...},
     "harness": {"warmup": 10, "runs": 30, "rounds": 10}, "statistic": "median",
     "pieces": {"<key>": {"ms": 0.41, "iqr_ms": 0.02, "min_ms": 0.39, "params": 49408,
                          "what": "block ...", "how": "in_situ", "samples": [0.41, ...]}, ...},
     "members": [{"hash": "...", "measured_ms": 3.1, "pieces": ["<key>", ...], "host": false}, ...],
     "spaces": ["hybrid_small"],
     "reference": {"name": "conv-attention-mlp-v1", "ms": 1.07, "iqr_ms": 0.02, "runs": 320}}

``statistic`` is the statistic of each timing's runs that every entry holds
(:data:`~archsearch.cost.STATISTICS`; a table without one, written before the choice existed,
holds medians): a table predicts that statistic, and is refused where another one is wanted.
``members`` are whole models measured with the harness, from which the per-model overhead is
fitted (:mod:`._predict`); ``host`` says whether pieces were timed inside the member (absent in
tables written before: their fit uses all members, :mod:`._overhead`); ``anchors`` are a few of
them kept for calibration (non-host members where the table has them), each with its canonical
spec (:mod:`._latency_anchors`; absent in older tables). ``reference`` is the time of a
fixed model timed in the same rounds as the table's pieces, against which the machine's speed is
calibrated when predicting (:mod:`._latency_reference`); every entry is stored at that speed. A
table without one (written before references existed) loads as it is and takes the first
reference timed with it.

Writes are atomic (a temporary file renamed over the table), so an interrupted
``archsearch latency-table`` leaves a valid table to resume from.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import Issue, SpecError
from ._heap import heap_mode
from ._latency import DEFAULT_STATISTIC, STATISTICS, check_statistic, device_name
from ._latency_file import FORMAT, VERSION, read_table_file

__all__ = ["FORMAT", "Fingerprint", "LatencyTable", "TableMismatch", "default_table_path"]


class TableMismatch(SpecError):
    """A latency table measured elsewhere (another device, thread count, dtype, batch, torch)."""


@dataclass(frozen=True)
class Fingerprint:
    """Where and how a table's pieces were timed; a table serves only this setting."""

    device: str
    """``cpu (<CPU model>)`` or ``cuda (<GPU name>)`` (:func:`~archsearch.cost.device_name`)."""
    threads: int | None
    """CPU threads (``None`` on CUDA, where it does not matter)."""
    torch: str
    dtype: str
    batch: int
    fused_attention: bool
    """Whether attention runs through ``scaled_dot_product_attention``
    (:func:`archsearch.set_fused_attention`)."""
    compiled: bool = False
    """``torch.compile``d models (not supported yet: always ``False``)."""

    @classmethod
    def here(
        cls, device: str = "cpu", *, threads: int | None = None, dtype: str = "float32", batch: int = 1
    ) -> Fingerprint:
        """This machine's fingerprint for timing on ``device`` with ``threads`` CPU threads
        (default: torch's current count) at ``batch`` in ``dtype``."""
        from ..ops import uses_fused_attention

        dev = torch.device(device)
        return cls(
            device=device_name(dev),
            threads=None if dev.type == "cuda" else (threads or torch.get_num_threads()),
            torch=torch.__version__.split("+")[0],
            dtype=dtype,
            batch=batch,
            fused_attention=uses_fused_attention(),
        )

    def describe(self) -> str:
        """One line: ``cpu (AMD EPYC 7B13), 2 threads, torch 2.13.0, float32, batch 1, fused attention``."""
        threads = f", {self.threads} threads" if self.threads is not None else ""
        fused = "fused attention" if self.fused_attention else "plain attention"
        compiled = ", compiled" if self.compiled else ""
        return (
            f"{self.device}{threads}, torch {self.torch}, {self.dtype}, batch {self.batch}, {fused}{compiled}"
        )

    def differences(self, other: Fingerprint) -> list[str]:
        """``threads: 2 here, 4 in the table``-style lines for each field that differs."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: {mine[k]!r} here, {theirs[k]!r} in the table" for k in mine if mine[k] != theirs[k]]

    def slug(self) -> str:
        """A file-name-safe name for this fingerprint (the default table file's name)."""
        kind = self.device.split(" ", 1)[0]
        name = "".join(c if c.isalnum() else "-" for c in self.device.split("(", 1)[-1].rstrip(")")).strip(
            "-"
        )
        while "--" in name:
            name = name.replace("--", "-")
        threads = f"-t{self.threads}" if self.threads is not None else ""
        fused = "" if self.fused_attention else "-plain"
        return f"{kind}-{name[:40]}{threads}-b{self.batch}-{self.dtype}-torch{self.torch}{fused}"


def default_table_path(fingerprint: Fingerprint, statistic: str = DEFAULT_STATISTIC) -> Path:
    """``$ARCHSEARCH_CACHE/latency-tables/<fingerprint slug>.json`` (default cache:
    ``~/.cache/archsearch``; ``<slug>-<statistic>.json`` for a statistic other than the median):
    where a table goes when no file is named."""
    root = Path(os.environ.get("ARCHSEARCH_CACHE", Path.home() / ".cache" / "archsearch"))
    suffix = "" if statistic == "median" else f"-{statistic}"
    return root / "latency-tables" / f"{fingerprint.slug()}{suffix}.json"


@dataclass
class LatencyTable:
    """Piece key -> median milliseconds on one :class:`Fingerprint`, plus measured whole members."""

    fingerprint: Fingerprint
    pieces: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    harness: dict[str, int] = field(default_factory=lambda: {"warmup": 10, "runs": 30, "rounds": 10})
    """How pieces and members are timed: ``warmup`` untimed runs, then ``runs`` timed ones in
    ``rounds`` interleaved rounds (:func:`~archsearch.cost.time_interleaved`; a table without
    ``rounds`` was timed member by member)."""
    spaces: list[str] = field(default_factory=list)
    path: Path | None = None
    reference: dict[str, Any] | None = None
    """The calibration reference's time in the table's speed: ``{"name", "ms", "iqr_ms", "runs"}``
    (:mod:`._latency_reference`); ``None`` in a table written before references existed."""
    anchors: list[dict[str, Any]] = field(default_factory=list)
    """A few whole fit members kept for calibration: ``{"hash", "ms", "spec"}`` (:mod:`._latency_anchors`)."""
    statistic: str = DEFAULT_STATISTIC
    """Which statistic of each timing's runs the entries (pieces, members, reference) hold
    (:data:`~archsearch.cost.STATISTICS`): what the table predicts."""
    heap: str | None = field(default_factory=heap_mode)
    """How the C heap was held while the entries were timed: ``"steady"`` (:mod:`._heap`) or
    ``"default"`` (glibc's defaults, or another C library); ``None`` in a table written before
    2026-12-01, timed on glibc's defaults (re-fill it: members ranked differently there)."""

    def __post_init__(self) -> None:
        check_statistic(self.statistic)

    def __contains__(self, key: object) -> bool:
        return key in self.pieces

    def __len__(self) -> int:
        return len(self.pieces)

    def ms(self, key: str) -> float:
        """The piece's median time (ms); ``KeyError`` when it was not measured."""
        return float(self.pieces[key]["ms"])

    def add(
        self,
        key: str,
        *,
        ms: float,
        iqr_ms: float = 0.0,
        min_ms: float | None = None,
        params: int = 0,
        what: str = "",
        how: str = "alone",
    ) -> None:
        """Record a piece's timing (replacing an earlier one); ``params``: the elements of its
        weights (parameters and buffers), which the overhead fit may use; ``how``: ``alone`` (the
        piece built and timed by itself) or ``in_situ`` (timed inside whole members)."""
        self.pieces[key] = {
            "ms": ms,
            "iqr_ms": iqr_ms,
            "min_ms": ms if min_ms is None else min_ms,
            "params": params,
            "what": what,
            "how": how,
        }

    def observe(self, key: str, ms: float, *, params: int = 0, what: str = "") -> None:
        """Add one in-place timing of a piece (its median inside one member): the entry's ``ms``
        becomes the median over the members it was timed in (``samples``, the last 15 kept).
        An entry timed alone is replaced."""
        entry = self.pieces.get(key)
        samples = list(entry.get("samples", [])) if entry and entry.get("how") == "in_situ" else []
        samples = [*samples, ms][-15:]
        median = (
            sorted(samples)[len(samples) // 2]
            if len(samples) % 2
            else sum(sorted(samples)[len(samples) // 2 - 1 : len(samples) // 2 + 1]) / 2
        )
        self.add(key, ms=median, min_ms=min(samples), params=params, what=what, how="in_situ")
        self.pieces[key]["samples"] = samples

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "version": VERSION,
            "fingerprint": asdict(self.fingerprint),
            "harness": self.harness,
            "statistic": self.statistic,
            **({"heap": self.heap} if self.heap is not None else {}),
            "pieces": self.pieces,
            "members": self.members,
            "spaces": self.spaces,
        }
        if self.reference is not None:
            out["reference"] = self.reference
        if self.anchors:
            out["anchors"] = self.anchors
        return out

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the table as JSON to ``path`` (default: where it was loaded from), atomically."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("this latency table has no file yet: pass a path to save it to")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=False))
        tmp.replace(target)
        self.path = target
        return target

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], expect: Fingerprint | None = None, statistic: str | None = None
    ) -> LatencyTable:
        """Read a table; with ``expect``, refuse one whose fingerprint differs; with ``statistic``,
        one that holds another statistic of the runs (a table without ``statistic`` holds medians).

        Raises:
            SpecError: the file is unreadable, empty, not JSON, not a latency table, of another
                format version, or holds an entry of the wrong type or out of range
                (:func:`~._latency_file.read_table_file`: each issue names the file, the line, the
                entry, the value and what is allowed), an unknown ``statistic`` among them.
            TableMismatch: the table was measured in another setting than ``expect``; the message
                names both fingerprints and each field that differs. Or it holds another statistic
                than ``statistic`` (the message names both and the allowed values).
        """
        file = Path(path)
        data = read_table_file(file)
        fingerprint = Fingerprint(**data["fingerprint"])
        if expect is not None and fingerprint != expect:
            raise TableMismatch(
                Issue(
                    ("fingerprint",),
                    f"this latency table was measured on [{fingerprint.describe()}], but latency is wanted "
                    f"on [{expect.describe()}] ({'; '.join(expect.differences(fingerprint))}); its times do "
                    "not hold here",
                    file=str(file),
                    allowed="a table measured in this setting: `archsearch latency-table SPACE --device ... "
                    "--threads ... --batch ... --dtype ... --out FILE` makes one",
                )
            )
        held = data.get("statistic", "median")  # one of STATISTICS: read_table_file checked it
        if statistic is not None and held != check_statistic(statistic):
            raise TableMismatch(
                Issue(
                    ("statistic",),
                    f"this latency table holds the {held!r} of each piece's runs, but the {statistic!r} "
                    "is wanted; the two differ on a loaded machine, so its times do not hold here",
                    value=held,
                    file=str(file),
                    allowed=f"a table of statistic {statistic!r} (`archsearch latency-table --statistic "
                    f"{statistic}`), or set `statistic: {held}` (allowed: {', '.join(STATISTICS)})",
                )
            )
        return cls(
            statistic=held,
            fingerprint=fingerprint,
            pieces=dict(data.get("pieces") or {}),
            members=list(data.get("members") or []),
            harness=dict(data.get("harness") or {"warmup": 10, "runs": 30}),
            spaces=list(data.get("spaces") or []),
            path=file,
            reference=_reference(data.get("reference")),
            anchors=list(data.get("anchors") or []),
            heap=data.get("heap"),
        )

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None, fingerprint: Fingerprint, statistic: str = DEFAULT_STATISTIC
    ) -> LatencyTable:
        """The table at ``path`` (default: :func:`default_table_path`) if it exists, checked
        against ``fingerprint`` and ``statistic``; else a new empty one of ``statistic`` that will
        be saved there. Raises :class:`TableMismatch` as :meth:`load`, ``ValueError`` for an
        unknown statistic."""
        check_statistic(statistic)
        file = Path(path) if path is not None else default_table_path(fingerprint, statistic)
        if file.exists():
            return cls.load(file, expect=fingerprint, statistic=statistic)
        return cls(fingerprint, path=file, statistic=statistic)


def _reference(entry: Any) -> dict[str, Any] | None:
    """A stored reference, or ``None`` when there is none or it is unreadable (it is then timed
    again: a table's pieces do not depend on it)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return None
    ms = entry.get("ms")
    if not isinstance(ms, int | float) or isinstance(ms, bool) or not ms > 0:
        return None
    return dict(entry)
