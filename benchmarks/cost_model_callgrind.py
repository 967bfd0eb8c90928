"""Instructions per spec of the analytic cost path, counted by valgrind (load-independent).

    valgrind --tool=callgrind --toggle-collect=takewhile_next \\
        --callgrind-out-file=/tmp/cost.out python benchmarks/cost_model_callgrind.py [N]
    # "Collected : X" on stderr; X / N = instructions per spec (callgrind_annotate /tmp/cost.out)

Runs ``WARM`` CvT-13-NAS candidates (benchmarks/cost_model.py's) through dict -> validate ->
normalise -> costs to warm the fast path and its memos, then N fresh ones (default 1000) inside
``itertools.takewhile``: with ``--toggle-collect=takewhile_next`` callgrind counts those alone
(no start-up, imports, warm-up or candidate generation), so one run gives the figure. On a
shared machine wall time is noise; this count is the figure to compare changes by.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from typing import Any

from cost_model import analytic_from_dict, cvt13_nas_candidates  # benchmarks/ is the script's folder

WARM = 700
"""Warm-up candidates: past the fast path's switch of the 10-block stage to "cold" (512 lookups)."""


def _step(data: dict[str, Any]) -> bool:
    analytic_from_dict(data)
    return True


def main(step: Callable[[dict[str, Any]], bool] = _step) -> None:
    """Warm up on WARM candidates, then run ``step`` on argv[1] (default 1000) fresh ones: the
    region callgrind counts (``--toggle-collect=takewhile_next``)."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    pool = cvt13_nas_candidates(WARM + n)
    for data in pool[:WARM]:
        analytic_from_dict(data)
    for _ in itertools.takewhile(step, pool[WARM:]):  # the counted region
        pass


if __name__ == "__main__":
    main()
