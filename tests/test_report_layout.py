"""What a newcomer reads in a report: reasons with their numbers, the CLI's words and counts,
library warnings once, importances flagged when too few trials stand behind them, the rebuild hint
that works from where the user stands, and figures checked in headless Chromium (no blank plot,
no label cut off or colliding, accuracy within 100%, whole trial numbers)."""

from __future__ import annotations

import dataclasses
import itertools
import re
import shutil
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from archsearch.cli import app
from archsearch.report import compute_report, demo_results, write_report
from archsearch.report._importance import MIN_IMPORTANCE_TRIALS, summarise_warnings
from archsearch.report._layout import axis_range, integer_step
from archsearch.report._reasons import group_reasons


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """34 trials, 16 choices, duplicates and rejected candidates; one accuracy of 99.9% (an axis
    padded past it would pass 100%)."""
    results = demo_results(30, seed=3)
    trials = results.trials.copy()
    complete = trials.index[trials["state"] == "COMPLETE"]
    trials.loc[complete[0], "accuracy"] = 0.999
    extra = []  # two duplicates and two rejected candidates, as the search engine stores them
    for n, (i, macs) in enumerate([(complete[1], 9_100_000), (complete[2], 12_800_000)]):
        reason = f"the same architecture as trial {int(trials.loc[i, 'trial'])} (complete)"
        extra.append({**trials.loc[i].to_dict(), "trial": 30 + n, "state": "PRUNED", "outcome": "duplicate"})
        extra[-1]["reason"] = reason
        reason = f"constraints: macs {macs:,} > max 8,000,000"
        extra.append({"trial": 32 + n, "state": "PRUNED", "outcome": "rejected", "reason": reason})
    trials = pd.concat([trials, pd.DataFrame(extra)], ignore_index=True)
    results = dataclasses.replace(results, trials=trials)
    return write_report(results, tmp_path_factory.mktemp("big"), zoo=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Few trials: importances from fewer than MIN_IMPORTANCE_TRIALS complete trials."""
    results = demo_results(9, seed=5)
    assert 2 <= (results.trials["state"] == "COMPLETE").sum() < MIN_IMPORTANCE_TRIALS
    return write_report(results, tmp_path_factory.mktemp("small"), zoo=False)


# --------------------------------------------------------------------------- words and numbers


def test_reasons_keep_their_numbers():
    pairs = [
        ("duplicate", "the same architecture as trial 3 (complete)"),
        ("duplicate", "the same architecture as trial 7 (complete)"),
        ("duplicate", "the same architecture as trial 3 (complete)"),
        *[
            ("rejected", f"constraints: macs {m:,} > max 8,000,000")
            for m in (9_100_000, 9_500_000, 10_200_000, 12_800_000)
        ],
        ("failed", "RuntimeError: loss is NaN at epoch 1\nTraceback ..."),
        ("rejected", "invalid: a.yaml:3: stages[1].mixer.heads: heads must divide the dim 48 (got 5)"),
        ("rejected", "invalid: a.yaml:3: stages[2].mixer.heads: heads must divide the dim 48 (got 5)"),
    ]
    grouped = group_reasons(pairs)
    assert grouped[0] == ("rejected", "constraints: macs 9,100,000–12,800,000 > max 8,000,000", 4)
    assert grouped[1] == ("duplicate", "the same architecture as trial 3 or 7 (complete)", 3)
    assert ("failed", "RuntimeError: loss is NaN at epoch 1", 1) in grouped
    # a number inside a YAML path is part of the reason, not a value: two reasons, each as it is
    assert ("rejected", pairs[-1][1], 1) in grouped and ("rejected", pairs[-2][1], 1) in grouped
    assert not any(re.search(r"\bN\b", text) for _, text, _ in grouped)


def test_report_lists_reasons_with_numbers_and_the_cli_words(big):
    md = big.report_md.read_text()
    line = next(line for line in md.splitlines() if line.startswith("- **not completed**"))
    assert re.search(r"duplicate: the same architecture as trial [\d, or]+ \(complete\) ×\d", line), line
    assert re.search(r"early-stopped: stopped by Optuna's median pruner at epoch 1 \(accuracy 0\.\d{4}", line)
    assert not re.search(r"\bN\b", line) and "PRUNED" not in line and "FAIL:" not in line
    assert f"- **study**: {big.summary}" in md
    assert re.fullmatch(r"34 trials: \d+ evaluated \(.*\)(, \d+ [a-z-]+)*; \d+ on the front", big.summary)
    assert ", 2 duplicate, 2 rejected, " in big.summary
    assert "rejected: constraints: macs 9,100,000 or 12,800,000 > max 8,000,000 ×2" in line
    assert big.summary in big.index_html.read_text()


def test_library_warnings_are_noted_once():
    template = "Some regimes for parameter `{}` have less than 2 trials. The importance may be inaccurate."
    said = [(t, template.format(p)) for t in ("accuracy", "macs", "Pareto front") for p in ("a.b", "c[d].e")]
    said.append(("macs", "Something else."))
    notes = summarise_warnings(said)
    assert notes == [
        "Parameter importances for accuracy, macs, Pareto front: Some regimes for parameter `…` have less "
        "than 2 trials. The importance may be inaccurate. (2: a.b, c[d].e)",
        "Parameter importances for macs: Something else.",
    ]


def test_report_notes_each_warning_once(small):
    notes = small.report_md.read_text().split("## Notes", 1)[1].splitlines()
    templates = [re.sub(r"`[^`]*`", "`…`", n.split(": ", 1)[-1]) for n in notes if n.startswith("- ")]
    assert len(templates) == len(set(templates)), notes


def test_importances_from_few_trials_carry_a_warning(small, big):
    md = small.report_md.read_text()
    section = md.split("## Most important choices", 1)[1]
    assert section.lstrip().startswith("> **Warning**: These importances come from")
    assert 'id="importance-warning"' in small.index_html.read_text()
    assert 'id="importance-warning"' not in big.index_html.read_text()  # 20+ complete trials


def test_rebuild_hint_works_from_where_the_user_stands(tmp_path, monkeypatch):
    results = dataclasses.replace(demo_results(12, seed=2), study=None)
    monkeypatch.chdir(tmp_path)
    files = write_report(results, Path("reports") / "r", zoo=False)
    winner = files.winners[0]
    hint = winner.read_text().split("# rebuild: archsearch compile ", 1)[1].splitlines()[0]
    assert hint == f"reports/r/winners/{winner.name}"
    result = CliRunner().invoke(app, ["compile", hint, "--json"])
    assert result.exit_code == 0, result.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    files = write_report(results, tmp_path / "other", zoo=False)
    hint = files.winners[0].read_text().split("# rebuild: archsearch compile ", 1)[1].splitlines()[0]
    assert hint == str(tmp_path / "other" / "winners" / files.winners[0].name)  # outside: absolute


def test_axis_helpers():
    assert axis_range([90.0, 99.9], "accuracy")[1] == 100.0
    assert axis_range([10.0, 20.0], "accuracy") == pytest.approx([9.5, 20.5])
    assert axis_range([1e6, 2e6], "macs") is None
    assert [integer_step(0, n) for n in (3, 9, 30, 140, 2000)] == [1, 1, 5, 20, 200]


def test_report_command_prints_the_same_counts(monkeypatch, tmp_path):
    import sys
    import types

    search = types.ModuleType("archsearch.search")
    search.load_study = lambda source: types.SimpleNamespace(user_attrs={}, directions=[])  # type: ignore[attr-defined]
    search.load_results = lambda study: dataclasses.replace(demo_results(12, seed=2), study=None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "archsearch.search", search)
    result = CliRunner().invoke(app, ["report", "x.yaml", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = compute_report(search.load_results("x"), zoo=False)
    assert f"demo-hybrid-32: {data.trials_summary()}" in result.output
    assert "rebuild a winner: archsearch compile " in result.output


# --------------------------------------------------------------------------- in a browser

_MEASURE = """() => {
  const box = e => { const r = e.getBoundingClientRect();
    return {l: r.left + scrollX, t: r.top + scrollY, r: r.right + scrollX, b: r.bottom + scrollY,
            text: e.textContent}; };
  const out = {plots: {}, page: [document.documentElement.scrollWidth, innerWidth]};
  document.querySelectorAll('div.plot').forEach(d => {
    out.plots[d.id] = box(d.querySelector('svg.main-svg')); });
  const p = document.getElementById('plot-parallel');
  if (p) out.parallel = {
    titles: Array.from(p.querySelectorAll('.axis-title')).map(box),
    texts: Array.from(p.querySelectorAll('.y-axis')).map(a =>
      Array.from(a.querySelectorAll('.tick text, .axis-extent-text')).map(box).filter(b => b.text)),
  };
  out.scatter = Array.from(document.querySelectorAll('div.plot[id^=plot-scatter]')).map(d => ({
    title: d._fullLayout.yaxis.title.text, range: d._fullLayout.yaxis.range,
    ticks: d._fullLayout.yaxis._vals.map(v => v.x)}));
  const h = document.getElementById('plot-history');
  out.historyTicks = h ? h._fullLayout.xaxis._vals.map(v => v.text) : [];
  out.overflowing = Array.from(document.querySelectorAll('dd, td, th, p, li, h1, h2, nav a'))
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible'
                 && e.clientWidth > 0 && !e.closest('.scroll'))
    .map(e => e.textContent.slice(0, 60));
  return out;
}"""


def _overlap(a: dict, b: dict) -> float:
    w = min(a["r"], b["r"]) - max(a["l"], b["l"])
    h = min(a["b"], b["b"]) - max(a["t"], b["t"])
    return max(w, 0) * max(h, 0)


_IN_VIEW = """id => { const d = document.getElementById(id);
  d.scrollIntoView({block: 'center', inline: 'start', behavior: 'instant'});
  const r = d.getBoundingClientRect(), x = Math.max(r.left, 0), y = Math.max(r.top, 0);
  return {x: x, y: y, width: Math.min(r.right, innerWidth) - x,
          height: Math.min(r.bottom, innerHeight) - y}; }"""


def _shot(page, plot_id: str, *, checks: int = 3, every_ms: int = 250, limit_s: float = 60.0) -> bytes:
    """The plot as the window shows it, scrolled into view, once ``checks`` readings of its box
    ``every_ms`` apart agree (a box that never settles fails, naming the last readings)."""
    readings: list[dict] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        readings.append(page.evaluate(_IN_VIEW, plot_id))
        if len(readings) >= checks and all(r == readings[-1] for r in readings[-checks:]):
            return page.screenshot(clip=readings[-1], animations="disabled", timeout=120_000)
        page.wait_for_timeout(every_ms)
    raise AssertionError(f"{plot_id}'s box still moved after {limit_s:.0f} s: {readings[-2:]}")


def _render(browser, html: Path) -> tuple[dict, dict[str, bytes]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_offline(True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.resolve().as_uri(), wait_until="load", timeout=120_000)
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('div.plot')).every(d => d.querySelector('svg.main-svg'))",
        timeout=120_000,
    )
    # each plot within the window, never the full page: a full-page screenshot resizes the window,
    # plotly's responsive plots redraw, and on a loaded CI machine one was caught blank mid-redraw
    # (a locator's screenshot, waiting for its plot to hold still, timed out there likewise)
    shots = {
        plot_id: _shot(page, plot_id)
        for plot_id in page.eval_on_selector_all("div.plot", "ds => ds.map(d => d.id)")
    }
    data = page.evaluate(_MEASURE)
    warning = page.locator("#importance-warning")
    data["warning_visible"] = warning.count() == 1 and warning.is_visible()
    context.close()
    assert not errors, errors
    return data, shots


@pytest.fixture(scope="module")
def rendered(big, small):
    if shutil.which("chromium") is None:
        pytest.skip("no chromium binary; CI installs it (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            yield {
                name: _render(browser, files.index_html) for name, files in (("big", big), ("small", small))
            }
        finally:
            browser.close()


@pytest.mark.parametrize("name", ["big", "small"])
def test_no_plot_is_blank(rendered, name):
    from PIL import Image

    data, shots = rendered[name]
    assert set(shots) >= {"plot-scatter-0", "plot-history", "plot-parallel", "plot-importance"}
    for plot_id, png in shots.items():
        box = data["plots"][plot_id]
        assert box["r"] - box["l"] > 300 and box["b"] - box["t"] > 200, plot_id
        image = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(np.int32)
        inked = (image < 235).any(axis=2).mean()
        # the data is drawn in colour (markers, lines, bars, the WebGL lines of parallel
        # coordinates); text, axes and grid are grey: a plot without data has no coloured pixel
        coloured = ((image.max(axis=2) - image.min(axis=2)) > 40).mean()
        assert inked > 0.005 and coloured > 0.003, (plot_id, inked, coloured)


@pytest.mark.parametrize("name", ["big", "small"])
def test_parallel_coordinates_labels_fit_and_ticks_do_not_collide(rendered, name):
    data, _ = rendered[name]
    svg, parallel = data["plots"]["plot-parallel"], data["parallel"]
    titles = parallel["titles"]
    assert len(titles) == len(parallel["texts"]) > 5
    for title in titles:  # inside the figure: not cut at the top or the sides
        assert svg["l"] <= title["l"] and title["r"] <= svg["r"], title
        assert svg["t"] <= title["t"] and title["b"] <= svg["b"], title
    for a, b in itertools.pairwise(titles):
        assert _overlap(a, b) == 0, (a["text"], b["text"])
    texts = [(i, t) for i, axis in enumerate(parallel["texts"]) for t in axis]
    for n, (i, a) in enumerate(texts):
        assert svg["l"] <= a["l"] and a["r"] <= svg["r"], a
        for j, b in texts[n + 1 :]:
            assert _overlap(a, b) < 1, f"axis {i} {a['text']!r} overlaps axis {j} {b['text']!r}"


def test_accuracy_axis_stays_within_100_percent(rendered):
    data, _ = rendered["big"]
    accuracy = [s for s in data["scatter"] if s["title"].startswith("accuracy")]
    assert accuracy
    for axis in accuracy:
        assert axis["range"][1] <= 100.0 + 1e-9 and max(axis["ticks"]) <= 100.0
        assert axis["range"][1] > 99.0  # the 99.9% trial is still in view


@pytest.mark.parametrize("name", ["big", "small"])
def test_hypervolume_axis_counts_whole_trials(rendered, name):
    ticks = rendered[name][0]["historyTicks"]
    assert len(ticks) >= 2 and all(re.fullmatch(r"\d+", t) for t in ticks), ticks


@pytest.mark.parametrize("name", ["big", "small"])
def test_page_text_does_not_overflow(rendered, name):
    data, _ = rendered[name]
    width, viewport = data["page"]
    assert width <= viewport, "the page scrolls sideways"
    assert not data["overflowing"], data["overflowing"]


def test_importance_warning_is_visible(rendered):
    assert rendered["small"][0]["warning_visible"] is True
    assert rendered["big"][0]["warning_visible"] is False
