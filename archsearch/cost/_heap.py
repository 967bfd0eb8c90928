"""A steady C heap while timing on CPU: no run pays for page faults that another did not.

PyTorch's CPU tensors come from the C library's ``malloc`` (``c10::alloc_cpu``: no caching
allocator on CPU). glibc's ``malloc`` serves a large block with a fresh ``mmap`` (faulted in page
by page on first touch, returned on ``free``) above a *dynamic* threshold: 128 KiB at first, raised
to the size of each mapped block freed, up to 32 MiB; and it trims the heap's free top back to the
system once it exceeds twice that threshold. A forward pass whose activations add up to more than
twice its largest one therefore gives its heap back after every run and faults it in again on the
next (``tests/test_latency_heap.py`` shows it: ten 8 MiB buffers fault 80 MiB in on every run), and
which buffers are mapped, reused or trimmed depends on what the process allocated and freed
before. The same member timed at two moments of one process came out up to 12 % apart, and members
of a space moved against one another by as much, where the runs of one timing agree to about 1 %.

Measured on a 2-core Intel Xeon VM (24 cvt13_nas members at 192 px, 2 threads, 10 rounds of 2
runs, timed three times in one process, each timing on fresh builds): with glibc's defaults, a
linear fit of the times on MACs and parameters left 1.8 %, 1.9 % and 0.2 % (median) and the
second and third timings ranked the members with Kendall's tau 0.88 and 0.75 against the first
(member by member 0.95-1.04x and 0.98-1.12x its time there); on a steady heap 0.5 %, 0.5 %,
0.4 %, tau 0.94 and 0.94 (0.999-1.024x, 0.988-1.012x). Serving every block of 64 KiB or more by
``mmap`` instead (the opposite cure) made every run fault: twice as slow.

:func:`steady_heap` sets the two thresholds for the time it is held, with ``mallopt``: blocks up
to 1 GiB come from the heap (where this glibc accepts it; else up to 32 MiB, glibc's largest
dynamic threshold, and larger blocks, e.g. of batch-64 CPU timings at 224 px, are still mapped
afresh each run), and the heap is not trimmed, so after the warm-up runs every run reuses the same
pages. On leaving, blocks above 32 MiB are mapped again, trimming is allowed again (at 64 MiB,
twice that, where glibc's own dynamic rule would put both) and the free heap is returned with
``malloc_trim``. glibc's dynamic rule stays off for good (``mallopt`` turns it off; it would reach
the same values in any process that frees a 32 MiB block). Intel's PyTorch CPU tuning guide reaches
the same end by preloading jemalloc or TCMalloc, which replace ``malloc`` and ignore ``mallopt``.

It does nothing (yields ``False``) elsewhere than glibc (macOS, musl), and where the user set
glibc's allocator already (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_`` or a ``glibc.malloc`` tunable in ``GLIBC_TUNABLES``):
those settings are theirs. Nested and concurrent uses hold the setting until the last one
leaves; a process forked while it is held starts with it let go. The latency harness
(:func:`~._latency.time_call`, :func:`~._latency.time_interleaved`, so every piece, member and
reference timing) holds it, and a latency table records whether its entries were timed so
(``"heap": "steady"``; tables written before 2026-12-01 have no ``heap``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

__all__ = ["HELD_MMAP_THRESHOLDS", "heap_is_steady", "heap_left_alone", "heap_mode", "steady_heap"]

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
HELD_MMAP_THRESHOLDS = (2**30, 32 * 2**20)
"""Bytes: blocks up to the first of these that ``mallopt`` accepts come from the heap while
:func:`steady_heap` is held (32 MiB is glibc's ``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit systems,
accepted by every glibc)."""
_AFTER_MMAP = 32 * 2**20  # what glibc's dynamic rule reaches
_NO_TRIM = 2**31 - 1  # mallopt takes an int
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_lock = threading.Lock()
_depth = 0
_generation = 0  # a forked child's own count starts afresh: holds entered before the fork are not its


def _on_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _users_settings() -> list[str]:
    """The user's own settings of glibc's allocator found in the environment (names)."""
    found = [name for name in _USER_SETTINGS if name in os.environ]
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        found.append("GLIBC_TUNABLES (glibc.malloc)")
    return found


@cache
def _glibc() -> Any | None:
    """The C library, where it is glibc with ``mallopt`` and ``malloc_trim`` and the user left its
    allocator settings alone; else ``None``."""
    if not _on_glibc() or _users_settings():
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


def heap_is_steady() -> bool:
    """Whether :func:`steady_heap` can hold this process's heap steady (glibc, settings not the
    user's own)."""
    return _glibc() is not None


def heap_left_alone() -> str | None:
    """Why :func:`steady_heap` changes nothing in this process (words for a message, e.g.
    ``"MALLOC_TRIM_THRESHOLD_ is set"``), or ``None`` where it holds the heap steady."""
    if _glibc() is not None:
        return None
    if not _on_glibc():
        return "the C library is not glibc"
    if users := _users_settings():
        return (
            f"{', '.join(users)} {'is' if len(users) == 1 else 'are'} set: your allocator settings are kept"
        )
    return "glibc's mallopt or malloc_trim is not available"


def heap_mode() -> str:
    """``"steady"`` where :func:`steady_heap` works here, else ``"default"`` (what a latency table
    records of how its entries were timed)."""
    return "steady" if heap_is_steady() else "default"


def _hold(libc: Any) -> bool:
    for threshold in HELD_MMAP_THRESHOLDS:
        if libc.mallopt(M_MMAP_THRESHOLD, threshold):
            libc.mallopt(M_TRIM_THRESHOLD, _NO_TRIM)
            return True
    return False


def _let_go(libc: Any) -> None:
    libc.mallopt(M_MMAP_THRESHOLD, _AFTER_MMAP)
    libc.mallopt(M_TRIM_THRESHOLD, 2 * _AFTER_MMAP)
    libc.malloc_trim(0)


@contextlib.contextmanager
def steady_heap() -> Iterator[bool]:
    """Hold the C heap steady while timing (see the module's text); yields whether it does
    (``False`` where it cannot: nothing is changed). Thread-safe; nests."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _lock:
        held = _depth > 0 or _hold(libc)
        if held:
            _depth += 1
        generation = _generation
    try:
        yield held
    finally:
        # a hold entered before this process was forked (in the parent) was dropped at the fork
        if held and generation == _generation:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    _let_go(libc)


def _after_fork_in_child() -> None:
    """A child forked while a timing held the heap: a fresh lock, and the heap let go."""
    global _lock, _depth, _generation
    _lock = threading.Lock()
    _generation += 1
    if _depth:
        _depth = 0
        libc = _glibc()
        if libc is not None:
            _let_go(libc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
