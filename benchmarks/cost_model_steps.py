"""Instructions per spec of each step of the analytic cost path, counted by valgrind.

    valgrind --tool=callgrind --toggle-collect=takewhile_next \\
        --callgrind-out-file=/tmp/steps.out python benchmarks/cost_model_steps.py [N]
    callgrind_annotate --inclusive=yes /tmp/steps.out | grep -E "(filterfalse|dropwhile|accumulate)_next"

As ``cost_model_callgrind.py``, but each step of a candidate runs under its own C iterator, so
the annotated output gives each step's inclusive count: validation (``filterfalse_next``),
normalisation (``dropwhile_next``) and costs (``accumulate_next``); what is left of
``takewhile_next`` is the loop and freeing the previous candidate's objects. On the code of
d988d63 (1000 candidates): 327,517 per spec in all, validation 170,607 (the structure key's
pickle 50,617 of it), normalisation 77,119, costs 68,907.
"""

from __future__ import annotations

import itertools
from typing import Any

from cost_model_callgrind import main  # benchmarks/ is the script's folder

from archsearch.cost import analytic_costs
from archsearch.spec import Spec, normalize


def _step(data: dict[str, Any]) -> bool:
    box: list[Any] = []
    for _ in itertools.filterfalse(lambda d: box.append(Spec.model_validate(d)), [data]):
        pass
    for _ in itertools.dropwhile(lambda s: box.append(normalize(s)), [box[0]]):
        pass
    for _ in itertools.accumulate([box[1], None], lambda p, _: analytic_costs(p)):
        pass
    return True


if __name__ == "__main__":
    main(_step)
