"""A steady C heap while timing on CPU: no run pays for page faults that another did not.

PyTorch's CPU tensors come from the C library's ``malloc`` (``c10::alloc_cpu``: no caching
allocator on CPU). glibc's ``malloc`` serves a large block with a fresh ``mmap`` (faulted in page
by page on first touch, returned on ``free``) above a *dynamic* threshold: 128 KiB at first, raised
to the size of each mapped block freed, up to 32 MiB; and it trims the heap's free top back to the
system once it exceeds twice that threshold. A forward pass whose activations add up to more than
twice its largest one therefore gives its heap back after every run and faults it in again on the
next (``tests/test_latency_heap.py`` shows it: ten 8 MiB buffers fault 80 MiB in on every run), and
which buffers are mapped, reused or trimmed depends on what the process allocated and freed
before. The same member timed at two moments of one process came out up to 10 % apart, and members
of a space moved against one another by as much, where the runs of one timing agree to about 1 %.

Measured on a 2-core Intel Xeon VM (24 cvt13_nas members at 192 px, 2 threads, 10 rounds of 2
runs, timed three times in one process, each timing on fresh builds): with glibc's defaults, a
linear fit of the times on MACs and parameters left 1.8 %, 1.9 % and 0.2 % (median) and the
second and third timings ranked the members with Kendall's tau 0.88 and 0.75 against the first
(member by member 0.95-1.04x and 0.98-1.12x its time there); on a steady heap 0.5 %, 0.5 %,
0.4 %, tau 0.94 and 0.94 (0.999-1.024x, 0.988-1.012x). Serving every block of 64 KiB or more by
``mmap`` instead (the opposite cure) made every run fault: twice as slow.

:func:`steady_heap` sets the two thresholds for the time it is held, with ``mallopt``: blocks up
to 32 MiB (glibc's largest threshold) come from the heap, which is not trimmed, so after the
warm-up runs every run reuses the same pages. On leaving, trimming is allowed again (at twice the
mapping threshold, where glibc's own dynamic rule would put it) and the free heap is returned with
``malloc_trim``. The mapping threshold stays fixed at 32 MiB (``mallopt`` turns glibc's dynamic
rule off for good; it climbs there in any process that frees a block that large). Intel's PyTorch
CPU tuning guide reaches the same end by preloading jemalloc or TCMalloc; this needs no other
library. Elsewhere than glibc (macOS, musl) it does nothing. Nested uses hold the setting until the
outermost one leaves. The latency harness (:func:`~._latency.time_call`,
:func:`~._latency.time_interleaved`, so every piece, member and reference timing) holds it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

__all__ = ["MMAP_THRESHOLD", "heap_is_steady", "steady_heap"]

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
"""Bytes: blocks up to this come from the heap while :func:`steady_heap` is held (glibc's
``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit systems, the most ``mallopt`` accepts)."""
_NO_TRIM = 2**31 - 1  # mallopt takes an int

_lock = threading.Lock()
_depth = 0


@cache
def _glibc() -> Any | None:
    """The C library, where it is glibc with ``mallopt`` and ``malloc_trim``; else ``None``."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


def heap_is_steady() -> bool:
    """Whether this process's timings run on a steady heap (glibc: :func:`steady_heap` works)."""
    return _glibc() is not None


@contextlib.contextmanager
def steady_heap() -> Iterator[bool]:
    """Hold the C heap steady while timing (see the module's text); yields whether it could
    (``False`` where the C library is not glibc: nothing is changed). Thread-safe; nests."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            libc.mallopt(M_TRIM_THRESHOLD, _NO_TRIM)
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
                libc.malloc_trim(0)
