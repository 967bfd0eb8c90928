"""A synthetic study for trying reports without searching: real specs, analytic costs, made-up
accuracy and latency, and a real in-memory Optuna study holding the same trials."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ._results import Objective, StudyResults, memory_study

__all__ = ["DEMO_OBJECTIVES", "demo_results", "demo_spec"]

DEMO_OBJECTIVES = (
    Objective("accuracy", "maximize"),
    Objective("macs", "minimize"),
    Objective("latency_ms", "minimize"),
)
_SIZE = 32
_STAGES: list[dict[str, Any]] = [  # per stage: embed, dims, depths, mixers
    {"stride": 2, "dims": [16, 32], "depths": [1, 2], "mixers": ["conv", "dwconv"]},
    {"stride": 2, "dims": [32, 48, 64], "depths": [1, 2, 3], "mixers": ["conv", "window", "attention"]},
    {"stride": 2, "dims": [64, 96, 128], "depths": [1, 2], "mixers": ["attention", "window", "conv"]},
]


def demo_spec(choices: dict[str, Any]) -> dict[str, Any]:
    """The concrete spec (plain data) of one point of the demo space, from its choices."""
    stages = []
    for i, family in enumerate(_STAGES):
        depth = choices[f"stages.{i}.depth"]
        dim = choices[f"stages.{i}.dim"]
        kind = choices[f"stages.{i}.mixer"]
        stage: dict[str, Any] = {
            "embed": {"kind": "conv", "kernel": 3, "stride": family["stride"], "norm": "batch"},
            "dim": dim,
            "depth": depth,
        }
        if kind in ("conv", "dwconv"):
            stage["mixer"] = kind  # the string shorthand
        elif kind == "window":
            stage["mixer"] = {"kind": "window", "heads": dim // 16, "window": 4 if i == 1 else 2}
        else:
            mixer = {"kind": "attention", "heads": dim // 16, "qkv": "dw_bn"}
            mixer["kv_stride"] = choices[f"stages.{i}.mixer.kv_stride"]
            stage["mixer"] = mixer
        if kind in ("window", "attention"):
            stage["mlp_ratio"] = [choices[f"stages.{i}.blocks.{b}.mlp_ratio"] for b in range(depth)]
        stages.append(stage)
    return {
        "input": {"size": _SIZE, "channels": 1},
        "stages": stages,
        "head": {"pool": "avg", "num_classes": 10},
    }


def _space(choices: dict[str, Any]) -> dict[str, list[Any]]:
    """The options of every choice that exists in a trial (nested choices depend on earlier ones)."""
    space: dict[str, list[Any]] = {}
    for i, family in enumerate(_STAGES):
        space[f"stages.{i}.dim"] = family["dims"]
        space[f"stages.{i}.depth"] = family["depths"]
        space[f"stages.{i}.mixer"] = family["mixers"]
        kind = choices.get(f"stages.{i}.mixer")
        if kind == "attention":
            space[f"stages.{i}.mixer.kv_stride"] = [1, 2]
        if kind in ("window", "attention"):
            for b in range(choices.get(f"stages.{i}.depth", 0)):
                space[f"stages.{i}.blocks.{b}.mlp_ratio"] = [2, 4]
    return space


def _sample(rng: random.Random) -> dict[str, Any]:
    choices: dict[str, Any] = {}
    while True:  # draw until every choice that exists has a value
        space = _space(choices)
        todo = [k for k in space if k not in choices]
        if not todo:
            return choices
        for key in todo:
            choices[key] = rng.choice(space[key])


def demo_results(
    n_trials: int = 200,
    *,
    seed: int = 0,
    objectives: Sequence[Objective] = DEMO_OBJECTIVES,
    study: bool = True,
    study_name: str = "demo-hybrid-32",
) -> StudyResults:
    """``n_trials`` trials of a three-stage hybrid space at 32x32 (conv, ConvNeXt, window and
    global attention mixers; dims, depths, key/value strides and per-block MLP ratios chosen).

    About 4% of trials fail, 10% are stopped early, duplicates are PRUNED as the search engine
    stores them, and the last two are RUNNING and WAITING; the ``outcome`` and ``reason`` columns
    hold the search engine's words. With ``study``, an in-memory Optuna study holds the same trials.
    """
    from ..cost import analytic_costs
    from ..spec import normalize, spec_from_dict, spec_hash

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number in range(n_trials):
        choices = _sample(rng)
        data = demo_spec(choices)
        spec = spec_from_dict(json.loads(json.dumps(data)))
        cost = analytic_costs(normalize(spec))
        digest = spec_hash(spec)
        attention = sum(
            choices[f"stages.{i}.depth"] for i in range(3) if choices[f"stages.{i}.mixer"] == "attention"
        )
        blocks = sum(choices[f"stages.{i}.depth"] for i in range(3))
        accuracy = (
            0.985 - 0.22 * math.exp(-math.sqrt(cost.macs / 3e6)) + 0.004 * attention + rng.gauss(0, 0.006)
        )
        latency = (0.12 + cost.macs / 2.5e7 + 0.03 * blocks + 0.05 * attention) * rng.lognormvariate(0, 0.05)
        row: dict[str, Any] = {
            "trial": number,
            "state": "COMPLETE",
            "outcome": "complete",
            "spec_hash": digest,
            "spec": json.dumps(data),
            "accuracy": min(accuracy, 0.995),
            "macs": cost.macs,
            "params": cost.params,
            "latency_ms": latency,
            "epochs": 3,
            "duration_s": 2.0 + cost.macs / 1e6 * rng.uniform(0.8, 1.2),
            "reason": None,
            "duplicate_of": None,
        }
        draw = rng.random()
        # the search engine's outcomes and reasons (archsearch.search's ledger), word for word
        if digest in seen:
            reason = f"the same architecture as trial {seen[digest]} (complete)"
            row.update(state="PRUNED", outcome="duplicate", reason=reason, duplicate_of=seen[digest])
        elif draw < 0.04:
            reason = "RuntimeError: loss is NaN at epoch 1"
            row.update(state="FAIL", outcome="failed", reason=reason, epochs=1)
        elif draw < 0.14:
            reason = f"stopped by Optuna's median pruner at epoch 1 (accuracy {0.6 * row['accuracy']:.4f})"
            row.update(state="PRUNED", outcome="early-stopped", reason=reason, epochs=1)
        if number >= n_trials - 2 and n_trials > 4:
            waiting = number != n_trials - 2
            row.update(state="WAITING" if waiting else "RUNNING", outcome="waiting" if waiting else "running")
            row.update(epochs=0, reason=None)
        if row["state"] != "COMPLETE":
            row.update(accuracy=math.nan, latency_ms=math.nan)
            row["duration_s"] = math.nan if row["state"] in ("RUNNING", "WAITING") else row["duration_s"] / 3
        if row["state"] == "WAITING":
            row.update(spec=None, spec_hash=None)
        seen.setdefault(digest, number)
        row.update({f"choice.{k}": v for k, v in choices.items()})
        rows.append(row)
    trials = pd.DataFrame(rows)
    choice_columns = sorted(c for c in trials.columns if c.startswith("choice."))
    trials = trials[[c for c in trials.columns if not c.startswith("choice.")] + choice_columns]
    results = StudyResults(
        study_name=study_name,
        objectives=list(objectives),
        trials=trials,
        input_size=(_SIZE, _SIZE),
        channels=1,
        num_classes=10,
        dataset="digits",
    )
    if study:
        results.study = _optuna_study(results, rows)
    return results


def _optuna_study(results: StudyResults, rows: list[dict[str, Any]]) -> Any:
    import optuna

    directions = [o.direction for o in results.objectives]
    study = memory_study(directions, results.study_name)
    states = {s.name: s for s in optuna.trial.TrialState}
    for row in rows:
        choices = {k.removeprefix("choice."): v for k, v in row.items() if k.startswith("choice.")}
        space = _space(choices)
        values = [row[o.metric] for o in results.objectives]
        state = row["state"]
        if state == "COMPLETE" and not all(math.isfinite(v) for v in values):
            state = "FAIL"  # Optuna stores no NaN objective values
        study.add_trial(
            optuna.trial.create_trial(
                state=states[state],
                values=[float(v) for v in values] if state == "COMPLETE" else None,
                params=choices,
                distributions={k: optuna.distributions.CategoricalDistribution(space[k]) for k in choices},
                user_attrs={"spec_hash": row["spec_hash"]},
            )
        )
    return study
