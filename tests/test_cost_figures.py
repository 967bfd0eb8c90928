"""analytic_costs sums plain, memoised figures and makes its per-part Cost objects only when read:
its totals and parts equal a breakdown computed block by block with fresh Cost objects and no
memo, on random members of every shipped search space (through the fast path, as a search sees
them) and on the zoo."""

from __future__ import annotations

from pathlib import Path

import pytest

import archsearch
from archsearch import SpecError
from archsearch.core import Cost, NormalizedSpec
from archsearch.cost import Breakdown, CostReport, analytic_costs
from archsearch.cost._analytic import _embed, _head_cost
from archsearch.kinds import FAMILIES, MIXERS, STEMS
from archsearch.space import RandomSuggest, load_space
from archsearch.spec import Spec, normalize

SPACES = sorted((Path(__file__).resolve().parent.parent / "search_spaces").glob("*.yaml"))


def _detailed(plan: NormalizedSpec) -> tuple[Cost, list[Cost], Cost, list[Cost], int]:
    """Stem, stages, head, blocks and frozen params, each part computed afresh (no memo)."""
    stem = Cost()
    if plan.spec.stem is not None:
        STEMS.get(plan.spec.stem.kind).cost(plan, stem)
    stages, blocks, frozen = [], [], 0
    for stage in plan.stages:
        cost = _embed(stage, stage.in_shape.channels)
        MIXERS.get(stage.blocks[0].mixer.kind).stage_cost(stage, cost)
        FAMILIES.get(stage.family).stage_cost(stage, cost)
        for block in stage.blocks:
            one = FAMILIES.get(block.family).cost(block, MIXERS.get(block.mixer.kind).cost)
            blocks.append(one)
            cost += one
        stages.append(cost)
        if stage.pos_embed == "sinusoidal":
            frozen += stage.embed_shape.channels * stage.embed_shape.tokens
    head = _head_cost(plan.head, plan.out_shape, plan.stages[-1].dist_token)
    return stem, stages, head, blocks, frozen


def _check(plan: NormalizedSpec, report: CostReport) -> None:
    stem, stages, head, blocks, frozen = _detailed(plan)
    parts = [stem, *stages, head]
    assert report.params == sum(p.params for p in parts)
    assert report.macs == sum(p.macs for p in parts)
    assert report.activations == sum(p.activations for p in parts)
    assert report.frozen_params == frozen
    assert (report.stem, report.stages, report.head, report.blocks) == (stem, stages, head, blocks)
    assert report.figures == Breakdown(
        (stem.params, stem.macs, stem.activations),
        tuple((s.params, s.macs, s.activations) for s in stages),
        (head.params, head.macs, head.activations),
        tuple((b.params, b.macs, b.activations) for b in blocks),
    )
    # the parts are made once and kept: what a report hands out stays the same object
    assert report.stages is report.stages and report.blocks is report.blocks


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_totals_equal_the_detailed_breakdown_on_members_of_every_shipped_space(path: Path) -> None:
    space = load_space(path)
    suggest = RandomSuggest(3)
    checked = 0
    for _ in range(60):
        data = space.sample(suggest).data
        try:
            plan = normalize(Spec.model_validate(data))
        except (SpecError, ValueError):
            continue  # an impossible member: no costs to compare
        _check(plan, analytic_costs(plan))
        _check(plan, analytic_costs(plan))  # again, from the memos
        checked += 1
    assert checked > 20, checked


@pytest.mark.parametrize("name", archsearch.zoo_names())
def test_totals_equal_the_detailed_breakdown_on_the_zoo(name: str) -> None:
    plan = normalize(archsearch.load_spec(name))
    _check(plan, analytic_costs(plan))


def test_by_scope_reads_the_figures() -> None:
    plan = normalize(archsearch.load_spec("cvt-13"))
    report = analytic_costs(plan)
    stem, stages, head, _, _ = _detailed(plan)
    want = {"stem": stem.macs, "head": head.macs} | {f"stages.{i}": s.macs for i, s in enumerate(stages)}
    assert report.by_scope == {k: v for k, v in want.items() if v}
    assert set(report.by_scope) == {"head", "stages.0", "stages.1", "stages.2"}
