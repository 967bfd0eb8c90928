"""Predicted latency in a search: the objective, the constraint, the report's measured column."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from archsearch.cost import Fingerprint, LatencyTable, piece_keys
from archsearch.cost import _predict as predict_module
from archsearch.errors import SpecError
from archsearch.report import write_report
from archsearch.search import _evaluate as evaluate_module
from archsearch.search import load_experiment, load_results, run_search
from archsearch.space import load_space, space_pieces

from .helpers import QUICK, tiny_space, write_file

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
SPACE = tiny_space(dims=(8, 16), depth=1)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables go to a fresh cache, never the user's."""
    monkeypatch.setenv("ARCHSEARCH_CACHE", str(tmp_path / "cache"))


def _no_candidate_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a candidate was timed although its latency is predicted")

    monkeypatch.setattr(evaluate_module, "measure_latency", boom)


def _fake_table(path: Path, space: dict[str, Any], threads: int = 1) -> LatencyTable:
    """A table holding every piece of ``space`` (10 classes, as digits) at 1 ms, attention blocks at
    3 ms: a member's prediction is :func:`_expected`."""
    table = LatencyTable(Fingerprint.here("cpu", threads=threads))
    for key in space_pieces(load_space(space, num_classes=10), samples=20):
        table.add(key, ms=1.0 + 2.0 * ("attention" in key))
    table.save(path)
    return table


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (
            {"metric": "macs", "predict": True},
            r"experiment.yaml:\d+: objectives\[0\]: predict applies to the ",
        ),
        ({"metric": "latency_ms", "table": "t.json"}, r"`table` is read only when latency is predicted"),
        (
            {"metric": "accuracy", "table": "t.json", "dtype": "float16"},
            r"dtype, table apply to the latency_ms",
        ),
        ({"metric": "params", "cuda_graph": True}, r"cuda_graph applies to the latency_ms objective only"),
        ({"metric": "latency_ms", "cuda_graph": True}, r"cuda_graph times a CUDA graph: set device: cuda"),
        (
            {"metric": "latency_ms", "device": "cuda", "cuda_graph": True, "predict": True},
            r"`cuda_graph` cannot be predicted",
        ),
    ],
)
def test_predict_fields_belong_to_latency(tmp_path: Path, objective: dict[str, Any], message: str) -> None:
    text = yaml.safe_dump({"space": "s.yaml", "objectives": [objective]})
    with pytest.raises(SpecError, match=message):
        load_experiment(write_file(tmp_path, text, "experiment.yaml"))


def test_a_relative_table_is_read_from_the_experiment_folder(tmp_path: Path) -> None:
    text = yaml.safe_dump(
        {"space": "s.yaml", "objectives": [{"metric": "latency_ms", "predict": True, "table": "t.json"}]}
    )
    exp = load_experiment(write_file(tmp_path, text, "experiment.yaml"))
    assert exp.objectives[0].table == str(tmp_path / "t.json")


def test_a_table_from_another_setting_stops_the_search_at_once(tmp_path: Path) -> None:
    table = _fake_table(tmp_path / "t.json", SPACE, threads=7)
    assert table.fingerprint.threads == 7
    exp = load_experiment(
        {
            "space": SPACE,
            **QUICK,
            "objectives": [
                {"metric": "grad_norm"},
                {"metric": "latency_ms", "predict": True, "threads": 1, "table": str(tmp_path / "t.json")},
            ],
            "trials": 1,
            "run_dir": str(tmp_path / "run"),
        }
    )
    with pytest.raises(SpecError, match=r"threads: 1 here, 7 in the table"):
        run_search(exp)


def test_predicted_latency_is_the_objective_and_nothing_is_timed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_table(tmp_path / "t.json", SPACE)
    _no_candidate_timed(monkeypatch)
    latency = {
        "metric": "latency_ms",
        "predict": True,
        "threads": 1,
        "table": str(tmp_path / "t.json"),
        "measure_front": False,
    }
    exp = load_experiment(
        {
            "space": SPACE,
            **QUICK,
            "objectives": [{"metric": "grad_norm"}, latency],
            "trials": 3,
            "run_dir": str(tmp_path / "run"),
        }
    )
    summary = run_search(exp)
    space = load_space(SPACE, num_classes=10)
    done = [t for t in summary.study.trials if t.user_attrs.get("outcome") == "complete"]
    assert len(done) == 3
    for t in done:
        plan = space.candidate(_fixed(t.params)).plan
        assert plan is not None
        assert t.user_attrs["latency_ms"] == pytest.approx(_expected(piece_keys(plan)))
    assert "latency_measured" not in summary.study.user_attrs


def _expected(keys: tuple[str, ...]) -> float:
    return sum(1.0 + 2.0 * ("attention" in k) for k in keys)


def _fixed(params: dict[str, Any]) -> Any:
    from archsearch.space import FixedSuggest

    return FixedSuggest(params)


def test_a_latency_bound_rejects_candidates_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_table(tmp_path / "t.json", SPACE)
    space = {
        **SPACE,
        "head": {"num_classes": 10},
        "constraints": {"latency_ms": {"max": 6, "threads": 1, "table": "t.json"}},
    }
    path = write_file(tmp_path, yaml.safe_dump(space), "space.yaml")
    loaded = load_space(path)
    counts = {"ok": 0, "rejected": 0}
    for candidate in loaded.random_samples(30, seed=1):
        assert candidate.plan is not None
        n = _expected(piece_keys(candidate.plan))
        if n > 6:
            assert candidate.rejected == f"constraints: latency_ms {n:.3g} (predicted) > max 6"
            counts["rejected"] += 1
        else:
            assert candidate.rejected is None
            counts["ok"] += 1
    assert counts["ok"] and counts["rejected"]


def test_a_damaged_table_stops_the_objective_and_the_constraint_with_its_entry(tmp_path: Path) -> None:
    import json

    _fake_table(tmp_path / "t.json", SPACE)
    data = json.loads((tmp_path / "t.json").read_text())
    key = next(iter(data["pieces"]))
    data["pieces"][key]["ms"] = "fast"
    (tmp_path / "t.json").write_text(json.dumps(data, indent=1))
    expected = rf"t.json:\d+: pieces.{re.escape(key)}.ms: expected a number \(got 'fast'\); allowed: a finite"
    objective = {"metric": "latency_ms", "predict": True, "threads": 1, "table": str(tmp_path / "t.json")}
    exp = load_experiment(
        {
            "space": SPACE,
            **QUICK,
            "objectives": [{"metric": "grad_norm"}, objective],
            "trials": 1,
            "run_dir": str(tmp_path / "run"),
        }
    )
    with pytest.raises(SpecError, match=expected):
        run_search(exp)
    space = {**SPACE, "constraints": {"latency_ms": {"max": 6, "threads": 1, "table": "t.json"}}}
    path = write_file(tmp_path, yaml.safe_dump(space), "space.yaml")
    line = yaml.safe_dump(space).splitlines().index("    table: t.json") + 1
    at_table = rf"^{re.escape(str(path))}:{line}: constraints.latency_ms.table: {re.escape(str(tmp_path))}/"
    with pytest.raises(SpecError, match=at_table + expected):
        next(iter(load_space(path).random_samples(1, seed=1)))  # the space's line points to the table


@pytest.mark.parametrize("table", ["missing.json", "tables/missing.json", "folder"])
def test_a_missing_table_names_the_space_line_and_creates_nothing(tmp_path: Path, table: str) -> None:
    """A ``table:`` that does not exist was silently made anew (folders included), its pieces timed
    into it; now ``archsearch space`` and a search stop at the space's line, before anything is
    written (no table, no folder, no study)."""
    from typer.testing import CliRunner

    from archsearch.cli import app

    (tmp_path / "folder").mkdir()
    space = {**SPACE, "constraints": {"latency_ms": {"max": 6, "threads": 1, "table": table}}}
    text = yaml.safe_dump(space)
    path = write_file(tmp_path, text, "space.yaml")
    line = text.splitlines().index(f"    table: {table}") + 1
    kind = "is a folder, not a latency table" if table == "folder" else "does not exist"
    expected = (
        f"{path}:{line}: constraints.latency_ms.table: {table} {kind} (read from the space file's folder: "
    )
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(app, ["space", str(path)])
    assert result.exit_code == 2 and " ".join(result.output.split()).startswith(f"error: {expected}")
    assert "allowed: a table `archsearch latency-table SPACE --out PATH` wrote, or no `table`" in " ".join(
        result.output.split()
    )
    exp = load_experiment({"space": str(path), **QUICK, "trials": 1, "run_dir": str(tmp_path / "run")})
    with pytest.raises(SpecError, match=re.escape(expected)):
        run_search(exp)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_latency_on_cuda_without_cuda_is_refused_before_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    """Timed on CUDA where there is none, every trial failed and was charged to the budget (exit 0,
    an empty front); now the objective's or the constraint's ``device`` line is the error, and
    nothing is stored."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    objective = {"metric": "latency_ms", "device": device}
    data = {"space": SPACE, **QUICK, "objectives": [{"metric": "grad_norm"}, objective], "trials": 2}
    exp_file = write_file(tmp_path, yaml.safe_dump(data), "exp.yaml")
    lines = yaml.safe_dump(data).splitlines()
    device_line = 1 + next(i for i, line in enumerate(lines) if line.endswith(f"device: {device}"))
    with pytest.raises(SpecError) as caught:
        run_search(load_experiment(exp_file))
    assert str(caught.value) == (
        f"{exp_file}:{device_line}: objectives[1].device: latency is timed there: CUDA is not available "
        f"here (got '{device}'); allowed: cpu (or run on a machine with a CUDA device)"
    )
    assert not (tmp_path / "runs").exists()
    # a Ray search times latency on the cluster's workers, which may have the GPU the driver lacks
    import archsearch.search._run as run_module

    def reached(experiment: object) -> None:
        raise LookupError("the backend was reached")

    ray = {**data, "backend": {"kind": "ray"}}
    with monkeypatch.context() as patch, pytest.raises(LookupError, match="the backend was reached"):
        patch.setattr(run_module, "backend_for", reached)
        run_search(load_experiment(write_file(tmp_path, yaml.safe_dump(ray), "ray.yaml")))
    space = {
        **SPACE,
        "head": {"num_classes": 10},
        "constraints": {"latency_ms": {"max": 6, "device": device}},
    }
    space_file = write_file(tmp_path, yaml.safe_dump(space), "space.yaml")
    data = {"space": "space.yaml", **QUICK, "trials": 2}
    with pytest.raises(
        SpecError, match=r"space.yaml:\d+: constraints.latency_ms.device: latency is predicted "
    ):
        run_search(load_experiment(write_file(tmp_path, yaml.safe_dump(data), "exp2.yaml")))
    assert space_file.exists() and not list((tmp_path / "runs").glob("*/*.journal"))


def test_a_device_this_machine_lacks_is_refused_before_the_cli_prints_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`archsearch search` printed its header (name, paths) and then the device error; now the error
    is the only output, worded as run_search's; the evaluator's device is refused the same way
    (every trial failed on it), and `profile`/`latency-table --device` use the same words."""
    import torch
    from typer.testing import CliRunner

    from archsearch.cli import app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    objective = {"metric": "latency_ms", "device": "cuda"}
    data = {"space": SPACE, **QUICK, "objectives": [{"metric": "grad_norm"}, objective], "trials": 2}
    exp_file = write_file(tmp_path, yaml.safe_dump(data), "exp.yaml")
    with pytest.raises(SpecError) as caught:
        run_search(load_experiment(exp_file))
    result = CliRunner().invoke(app, ["search", str(exp_file)])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == " ".join(f"error: {caught.value}".split())
    assert not (tmp_path / "runs").exists()
    evaluator = {**QUICK["evaluator"], "device": "cuda"}
    exp_file = write_file(tmp_path, yaml.safe_dump({**data, **QUICK, "evaluator": evaluator}), "ev.yaml")
    result = CliRunner().invoke(app, ["search", str(exp_file)])
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert "evaluator.device: CUDA is not available here (got 'cuda')" in " ".join(result.output.split())
    assert not (tmp_path / "runs").exists()
    words = "--device cuda: CUDA is not available here; allowed: cpu (or run on a machine with a CUDA device)"
    for command in (
        ["profile", "cvt13"],
        ["latency-table", str(write_file(tmp_path, yaml.safe_dump(SPACE)))],
    ):
        result = CliRunner().invoke(app, [*command, "--device", "cuda"])
        assert result.exit_code == 2 and " ".join(result.output.split()) == f"error: {words}", result.output


def test_an_inline_spaces_latency_table_is_read_from_the_experiment_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative ``table`` of a space written inside the experiment file was read from the current
    folder; it is read from the file's folder, as every relative path of an experiment is."""
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    space = {**SPACE, "constraints": {"latency_ms": {"max": 5, "table": "t.json"}}}
    exp_file = write_file(
        tmp_path / "sub", yaml.safe_dump({"space": space, **QUICK, "trials": 2}), "exp.yaml"
    )
    experiment = load_experiment(exp_file)
    assert experiment.space["constraints"]["latency_ms"]["table"] == str(tmp_path / "sub" / "t.json")
    with pytest.raises(
        SpecError, match=r"exp.yaml:\d+: space.constraints.latency_ms.table: (.*)/sub/t.json does not"
    ):
        run_search(experiment)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sub" / "runs").exists()


def test_a_bad_latency_bound_names_its_line(tmp_path: Path) -> None:
    space = {**SPACE, "constraints": {"latency_ms": {"max": 2, "device_kind": "cpu"}}}
    path = write_file(tmp_path, yaml.safe_dump(space), "space.yaml")
    with pytest.raises(SpecError, match=r"space.yaml:\d+: constraints.latency_ms.device_kind: unknown key"):
        load_space(path)


def test_quickstart_with_predicted_latency_times_no_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped quickstart, latency predicted: the search times no candidate (pieces are timed
    into the table on demand); afterwards the front is timed whole and the report shows both."""
    _no_candidate_timed(monkeypatch)
    timed: list[str] = []
    real = predict_module.time_interleaved
    calls: list[int] = []

    def spy(items: list[Any], **kwargs: Any) -> Any:
        timed.extend("front" for _ in items)
        calls.append(len(items))
        return real(items, **{**kwargs, "runs": 4, "rounds": 2})

    monkeypatch.setattr(predict_module, "time_interleaved", spy)  # whole models: the front only
    table = tmp_path / "quick.json"
    exp = load_experiment(
        ROOT / "experiments" / "quickstart.yaml",
        [
            "trials=3",
            "evaluator.epochs=1",
            "objectives.2.predict=true",
            "objectives.2.threads=1",
            f"objectives.2.table={table}",
            f"run_dir={tmp_path / 'run'}",
        ],
    )
    summary = run_search(exp)
    study = summary.study
    done = [t for t in study.trials if t.user_attrs.get("outcome") == "complete"]
    assert done and all(t.user_attrs["latency_ms"] > 0 for t in done)
    saved = LatencyTable.load(table)
    assert len(saved) > 0  # the pieces were timed into the table, on demand
    measured = study.user_attrs["latency_measured"]
    front = {str(t.number) for t in study.best_trials if t.user_attrs.get("outcome") == "complete"}
    # the front timed together, interleaved, with the calibration reference in the same rounds
    assert set(measured) == front and len(timed) == len(front) + 1
    assert calls == [len(front) + 1]
    assert len(saved.members) == len(front)  # the overhead fit learns from them
    report = tmp_path / "report"
    write_report(load_results(study), report)
    text = (report / "README.md").read_text() if (report / "README.md").exists() else ""
    text = text or next(report.glob("*.md")).read_text()
    assert "measured latency" in text
