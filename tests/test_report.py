"""Pareto reports: files, the front, winners that rebuild their trial, odd studies, a real browser."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
import types
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import archsearch
from archsearch.cost import count_params, count_traced
from archsearch.pareto import pareto_mask
from archsearch.report import Objective, StudyResults, demo_results, write_report
from archsearch.spec import load_spec, spec_hash

ZOO_TRIAL = 1000  # the trial number given to a zoo model in the study


@pytest.fixture(scope="module")
def results() -> StudyResults:
    """30 demo trials (COMPLETE, PRUNED, FAIL, RUNNING, WAITING; NaN metrics where not complete),
    one complete trial without a latency, and one trial that is the zoo's mobilevit-xxs at 32x32."""
    study = demo_results(30, seed=3)
    trials = study.trials.copy()
    nan_latency = int(trials.index[trials["state"] == "COMPLETE"][0])
    trials.loc[nan_latency, "latency_ms"] = np.nan
    spec = load_spec("mobilevit-xxs", num_classes=10, input_size=[32, 32], in_chans=1)
    from archsearch.cost import analytic_costs
    from archsearch.spec import normalize

    cost = analytic_costs(normalize(spec))
    zoo_row = {
        "trial": ZOO_TRIAL,
        "state": "COMPLETE",
        "spec_hash": spec_hash(spec),
        "spec": json.dumps(spec.model_dump(mode="json", exclude_none=True)),
        "accuracy": 0.999,  # on the front whatever else is
        "macs": cost.macs,
        "params": cost.params,
        "latency_ms": 0.9,
        "epochs": 3,
        "duration_s": 10.0,
    }
    study.trials = pd.concat([trials, pd.DataFrame([zoo_row])], ignore_index=True)
    assert {"COMPLETE", "PRUNED", "FAIL"} <= set(study.trials["state"])
    return study


@pytest.fixture(scope="module")
def report(results: StudyResults, tmp_path_factory: pytest.TempPathFactory):
    return write_report(results, tmp_path_factory.mktemp("report"))


def _front_trials(markdown: str) -> set[int]:
    section = markdown.split("## Pareto front", 1)[1].split("\n## ", 1)[0]
    return {int(m) for m in re.findall(r"^\| (\d+)", section, flags=re.M)}


def _expected_front(results: StudyResults) -> set[int]:
    complete = results.trials[results.trials["state"] == "COMPLETE"]
    names = [o.metric for o in results.objectives]
    values = complete[names].to_numpy(dtype=float)
    finite = np.isfinite(values).all(axis=1)
    mask = pareto_mask(values[finite], [o.direction for o in results.objectives])
    return set(complete["trial"][finite][mask].astype(int))


class _Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and tag in ("script", "link", "img", "iframe"):
                self.sources.append(value)


def test_every_file_is_written(report):
    for path in (report.index_html, report.report_md, report.trials_csv, report.trials_parquet):
        assert path.is_file() and path.stat().st_size > 0
    assert report.winners and all(p.suffix == ".yaml" for p in report.winners)
    names = sorted(p.name for p in report.figures)
    assert names == ["hypervolume.png", "pareto-accuracy-vs-latency_ms.png", "pareto-accuracy-vs-macs.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in report.figures)
    md = report.report_md.read_text()
    assert all(f"({p.relative_to(report.out_dir).as_posix()})" in md for p in report.figures + report.winners)


def test_html_is_self_contained(report):
    text = report.index_html.read_text()
    parser = _Sources()
    parser.feed(text)
    assert not [s for s in parser.sources if re.match(r"(https?:)?//", s)], parser.sources
    assert text.count("window.Plotly = Plotly") == 1  # plotly.js inline, once
    assert "cdn" not in " ".join(parser.sources).lower()
    for section in ("plot-scatter-0", "plot-history", "plot-parallel", "plot-importance", "front-table"):
        assert f'id="{section}"' in text
    assert "reference point" in text and "nadir of the complete trials" in text


def test_front_in_markdown_is_the_pareto_mask_of_complete_trials(results, report):
    md = report.report_md.read_text()
    expected = _expected_front(results)
    assert _front_trials(md) == expected
    assert {int(p.stem.rsplit("-t", 1)[1]) for p in report.winners} == expected
    assert "lack a value for an objective" in md  # the complete trial without a latency


def test_tables_hold_every_trial(results, report):
    csv = pd.read_csv(report.trials_csv)
    parquet = pd.read_parquet(report.trials_parquet)
    assert len(csv) == len(parquet) == len(results.trials)
    assert list(parquet.columns) == list(results.trials.columns)
    assert sorted(parquet["trial"]) == sorted(results.trials["trial"])


def test_winners_rebuild_their_trials_exactly(results, report):
    """Acceptance: each winner YAML builds the trial's model, same params and traced MACs."""
    table = results.trials.set_index("trial")
    h, w = results.input_size
    for path in report.winners:
        trial = int(path.stem.rsplit("-t", 1)[1])
        row = table.loc[trial]
        assert path.read_text().startswith(f"# {results.study_name}, trial {trial}")
        spec = archsearch.load_spec(path)
        assert spec_hash(spec) == row["spec_hash"]
        model = archsearch.build(spec)
        assert count_params(model)[0] == row["params"], path.name
        counts = count_traced(model, (1, results.channels, h, w))
        assert counts.macs == row["macs"], path.name


def test_compile_command_builds_a_winner(results, report):
    from archsearch.cli import app

    path = next(p for p in report.winners if not p.stem.endswith(f"-t{ZOO_TRIAL}"))
    result = CliRunner().invoke(app, ["compile", str(path), "--json"])
    assert result.exit_code == 0, result.output
    trial = int(path.stem.rsplit("-t", 1)[1])
    assert json.loads(result.output)["params"] == results.trials.set_index("trial").loc[trial, "params"]


def test_zoo_model_in_the_study_is_named(report):
    md = report.report_md.read_text()
    assert f"| {ZOO_TRIAL} (= mobilevit-xxs) |" in md
    assert re.search(rf"\| mobilevit-xxs \| [^|]+ \| [^|]+ \| {ZOO_TRIAL} \|", md)
    html = report.index_html.read_text()
    assert "= mobilevit-xxs" in html
    winner = next(p for p in report.winners if p.stem.endswith(f"-t{ZOO_TRIAL}"))
    assert "the zoo's mobilevit-xxs" in winner.read_text()


def test_given_reference_point_is_used_and_checked(results, tmp_path):
    small = dataclasses.replace(results, study=None)
    files = write_report(small, tmp_path, reference=[0.5, 5e7, 5.0], zoo=False)
    md = files.report_md.read_text()
    assert "given by the user" in md and "accuracy 50.00%" in md
    with pytest.raises(ValueError, match="one value per objective"):
        write_report(small, tmp_path, reference=[0.5, 5e7], zoo=False)


def test_no_complete_trials(results, tmp_path):
    trials = results.trials.copy()
    trials["state"] = np.where(trials["state"] == "COMPLETE", "FAIL", trials["state"])
    files = write_report(dataclasses.replace(results, trials=trials, study=None), tmp_path, zoo=False)
    md = files.report_md.read_text()
    assert "No trial completed yet" in md and "there is no front yet" in md
    assert files.winners == [] and files.figures == []
    assert "No trial completed yet" in files.index_html.read_text()
    empty = dataclasses.replace(results, trials=results.trials.iloc[0:0], study=None)
    files = write_report(empty, tmp_path / "empty", zoo=False)
    assert "**study**: 0 trials: 0 evaluated; 0 on the front" in files.report_md.read_text()


def test_one_objective(results, tmp_path):
    single = dataclasses.replace(results, objectives=[Objective("accuracy", "maximize")], study=None)
    files = write_report(single, tmp_path, zoo=False)
    complete = results.trials[results.trials["state"] == "COMPLETE"]
    best = int(complete.loc[complete["accuracy"].idxmax(), "trial"])
    assert _front_trials(files.report_md.read_text()) == {best}
    assert sorted(p.name for p in files.figures) == [
        "best-so-far.png",
        "pareto-accuracy-vs-latency_ms.png",
        "pareto-accuracy-vs-macs.png",
    ]
    assert "hypervolume" not in files.report_md.read_text().split("## Pareto front")[0]


def test_missing_latency_column(results, tmp_path):
    trials = results.trials.drop(columns=["latency_ms"])
    two = dataclasses.replace(
        results,
        trials=trials,
        objectives=[Objective("accuracy", "maximize"), Objective("macs", "minimize")],
        study=None,
    )
    files = write_report(two, tmp_path, zoo=False)
    assert sorted(p.name for p in files.figures) == ["hypervolume.png", "pareto-accuracy-vs-macs.png"]
    assert _front_trials(files.report_md.read_text()) == _expected_front(two)
    assert "latency" not in files.report_md.read_text().split("## Pareto front")[1].split("\n\n")[1]
    with pytest.raises(ValueError, match="latency_ms"):
        write_report(dataclasses.replace(results, trials=trials), tmp_path, zoo=False)


def test_importances_skipped_with_a_note(results, tmp_path):
    files = write_report(dataclasses.replace(results, study=None), tmp_path, zoo=False)
    assert "no Optuna study was given" in files.report_md.read_text()
    assert 'id="plot-importance"' not in files.index_html.read_text()


def test_report_command(results, tmp_path, monkeypatch):
    from archsearch.cli import app

    search = types.ModuleType("archsearch.search")
    search.load_study = lambda source: results.study  # type: ignore[attr-defined]
    search.load_results = lambda source: dataclasses.replace(results, study=None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "archsearch.search", search)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "some.yaml", "--out", str(tmp_path), "--reference=0.5,5e7,5"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "index.html").is_file() and "given by the user" in (tmp_path / "report.md").read_text()
    result = runner.invoke(app, ["report", "some.yaml", "--out", str(tmp_path), "--reference", "0.5,x"])
    assert result.exit_code == 2 and "--reference: not a number (got '0.5,x')" in result.output
    result = runner.invoke(app, ["report", "some.yaml", "--out", str(tmp_path), "--reference", "0.5"])
    assert result.exit_code == 2 and "one value per objective" in result.output


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="no chromium binary; CI installs it (apt-get install -y chromium)",
)
def test_page_renders_in_a_browser_offline(report):
    """Acceptance: headless Chromium, network off, renders every plot without a console error."""
    sync_api = pytest.importorskip("playwright.sync_api")
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_offline(True)
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.index_html.resolve().as_uri(), wait_until="load")
            plots = page.locator("div.plot")
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('div.plot'))"
                ".every(d => d.querySelector('svg.main-svg'))",
                timeout=20_000,
            )
            assert plots.count() == 5
            assert page.locator("#plot-scatter-0 .scatterlayer .point").count() > 10
            png = page.screenshot(full_page=True)
            # sorting: clicking the accuracy header twice puts the most accurate member first
            header = page.locator("#front-table th", has_text="accuracy")
            header.click()
            header.click()
            first = page.locator("#front-table tbody tr").first.locator("td").first.inner_text()
        finally:
            browser.close()
    assert not problems, problems
    assert all(u.startswith("file:") for u in requests), requests
    assert first.startswith(str(ZOO_TRIAL))
    from io import BytesIO

    from PIL import Image

    image = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(np.uint32)
    assert (image < 240).any(axis=2).mean() > 0.05  # not blank
    colours = np.unique((image[..., 0] << 16) | (image[..., 1] << 8) | image[..., 2])
    assert len(colours) > 200  # many colours: plots, not just text
