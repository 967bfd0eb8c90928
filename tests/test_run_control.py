"""Running a study as a newcomer meets it (issue 18): one run at a time per study on a file
storage, paths read from the experiment file, plain progress lines off a terminal, Optuna's tools
reading the study, the dominance rule's ties, and the small things (--version, --json, wording)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend
from typer.testing import CliRunner

from archsearch.cli import app
from archsearch.search import (
    Curve,
    NothingRun,
    StudyInUse,
    StudyLock,
    Terminated,
    dominated_at,
    load_experiment,
    load_study,
    run_search,
    sigterm_as_interrupt,
    without_duplicates,
)
from archsearch.search import _evaluate as evaluate_module

from .helpers import QUICK, tiny_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
runner = CliRunner()

SPACE = tiny_space(dims=(8, 16), depth=1)
TRAIN = {"kind": "train", "epochs": 1, "batch_size": 128, "flip": False}


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _quick(tmp_path: Path, trials: int = 2, name: str = "E") -> Path:
    data = {"space": SPACE, **QUICK, "sampler": {"kind": "random", "seed": 0}, "trials": trials}
    return _write(tmp_path / f"{name}.yaml", data)


def _journal(path: Path, name: str = "E") -> optuna.Study:
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    return optuna.load_study(study_name=name, storage=storage)


# --------------------------------------------------------------------------- one run at a time

#: A search whose evaluations wait until the file argv[1] exists (so a test holds it mid-trial).
GATED = """
import pathlib, sys, time
from archsearch.search import _evaluate as ev
gate, real = pathlib.Path(sys.argv[1]), ev.zero_cost_scores
def gated(*args, **kwargs):
    while not gate.exists():
        time.sleep(0.05)
    return real(*args, **kwargs)
ev.zero_cost_scores = gated
from archsearch.cli import main
sys.argv = ["archsearch", "search", sys.argv[2], "--no-report"]
main()
"""


def _start_gated(tmp_path: Path, exp: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", GATED, str(tmp_path / "gate"), str(exp)]
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_running(proc: subprocess.Popen, journal: Path) -> optuna.trial.FrozenTrial:
    """Wait until the process holds the lock and has a trial RUNNING (its evaluation gated)."""
    lock = journal.with_name("study.journal.E.lock")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            owner = json.loads(lock.read_text() or "{}")
        except (OSError, ValueError):  # not there yet, or being written
            owner = {}
        if owner.get("pid") == proc.pid and journal.exists():
            try:
                running = [t for t in _journal(journal).trials if t.state.name == "RUNNING"]
            except KeyError:  # the study is not created yet
                running = []
            if running and "macs" in running[0].user_attrs:
                return running[0]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the first run never started a trial: {proc.communicate()}")


def test_a_second_run_of_a_running_study_refuses_and_the_first_finishes(tmp_path):
    exp = _quick(tmp_path)
    journal = tmp_path / "runs" / "E" / "study.journal"
    first = _start_gated(tmp_path, exp)
    try:
        running = _wait_running(first, journal)
        started = time.monotonic()
        second = runner.invoke(app, ["search", str(exp), "--no-report"])
        assert time.monotonic() - started < 30  # refused at once, not after the first ends
        assert second.exit_code == 2, second.output
        assert "Traceback" not in second.output
        line = " ".join(second.stderr.split())
        assert line.startswith("error: study 'E' is in use by another run:")
        assert f"pid {first.pid} on host {socket.gethostname()} since " in line
        assert "archsearch search" in line and "study.journal.E.lock" in line
        # the first run's trial was left alone: not taken for one a dead run left behind
        again = next(t for t in _journal(journal).trials if t.number == running.number)
        assert again.state.name == "RUNNING" and "outcome" not in again.user_attrs
    finally:
        (tmp_path / "gate").touch()
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stdout + stderr
    assert "Traceback" not in stderr and "UpdateFinishedTrialError" not in stderr
    outcomes = [t.user_attrs["outcome"] for t in _journal(journal).trials]
    assert outcomes.count("complete") == 2 and "interrupted" not in outcomes
    assert not journal.with_name("study.journal.E.lock").exists()  # removed as the run ended


def _signalled(
    tmp_path: Path, sig: int
) -> tuple[Path, Path, optuna.trial.FrozenTrial, subprocess.Popen, str, str]:
    """A gated search sent ``sig`` mid-trial: (experiment, journal, its running trial, the process,
    its stdout and stderr)."""
    exp = _quick(tmp_path)
    journal = tmp_path / "runs" / "E" / "study.journal"
    first = _start_gated(tmp_path, exp)
    running = _wait_running(first, journal)
    first.send_signal(sig)
    stdout, stderr = first.communicate(timeout=120)
    return exp, journal, running, first, stdout, stderr


def _retry_of(journal: Path, trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """The trial that retried ``trial`` (same params), complete."""
    retry = next(t for t in _journal(journal).trials if t.user_attrs.get("retry_of") == trial.number)
    assert retry.params == trial.params and retry.user_attrs["outcome"] == "complete"
    return retry


def test_a_killed_runs_lock_does_not_block_the_resume(tmp_path):
    exp, journal, running, _, _, _ = _signalled(tmp_path, signal.SIGKILL)
    assert journal.with_name("study.journal.E.lock").exists()  # a kill leaves the file behind
    result = runner.invoke(app, ["search", str(exp), "--no-report"])
    assert result.exit_code == 0, result.output
    trials = _journal(journal).trials
    dead = trials[running.number]
    assert dead.user_attrs["outcome"] == "interrupted"
    assert dead.user_attrs["reason"] == "left running by a run that stopped"
    _retry_of(journal, running)
    assert sum(t.user_attrs["outcome"] == "complete" for t in trials) == 2


def test_sigterm_stops_a_search_as_ctrl_c_does(tmp_path):
    """``kill PID`` used to end the search at once (status 143, no message, the trial left RUNNING)."""
    exp, journal, running, first, stdout, stderr = _signalled(tmp_path, signal.SIGTERM)
    assert first.returncode == 143, stdout + stderr
    assert "Traceback" not in stderr
    assert " ".join(stderr.split()).endswith(  # the console wraps long lines
        "stopped by SIGTERM: completed trials are stored; run the same command again to resume"
    )
    shown = " ".join(stdout.split())
    assert f"trial {running.number} interrupted: stopped by SIGTERM; retried on resume" in shown
    stopped = _journal(journal).trials[running.number]
    assert stopped.state.name == "FAIL" and stopped.user_attrs["outcome"] == "interrupted"
    assert stopped.user_attrs["reason"] == "stopped by SIGTERM; retried on resume"
    assert not journal.with_name("study.journal.E.lock").exists()
    (tmp_path / "gate").touch()  # the resume retries it
    result = runner.invoke(app, ["search", str(exp), "--no-report"])
    assert result.exit_code == 0, result.output
    _retry_of(journal, running)


def test_sigterm_handling_ends_with_the_search(tmp_path):
    """The handler is the search's only while it runs: the previous one is put back."""

    def mine(signum, frame):  # pragma: no cover - never sent
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        seen = []
        with sigterm_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))
        assert seen[0] is not mine and signal.getsignal(signal.SIGTERM) is mine
        with pytest.raises(Terminated) as caught, sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        assert isinstance(caught.value, KeyboardInterrupt) and caught.value.signal_name == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is mine
        summary = run_search(load_experiment(_quick(tmp_path, trials=1)))
        assert not summary.interrupted and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_lock_names_its_holder_and_is_free_once_released(tmp_path):
    storage = tmp_path / "study.journal"
    with StudyLock(storage, "s") as held:
        owner = json.loads(held.path.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(StudyInUse, match=f"pid {os.getpid()} on host ") as info:
            StudyLock(storage, "s").__enter__()  # another open of the file: flock refuses it
        assert info.value.owner["pid"] == os.getpid()
        with StudyLock(storage, "other"):  # another study of the same file is another lock
            pass
    assert not held.path.exists()
    with StudyLock(storage, "s"):
        pass


def test_a_postgresql_storage_takes_no_lock(tmp_path):
    from archsearch.search import Experiment

    exp = load_experiment({"space": SPACE, **QUICK, "backend": {"storage": "postgresql://u@h/db"}})
    assert isinstance(exp, Experiment) and exp.storage_file is None


# --------------------------------------------------------------------------- paths, progress, --json


def test_a_study_is_found_from_any_directory_with_plain_progress_lines(tmp_path, monkeypatch):
    work = tmp_path / "work"
    _write(work / "space.yaml", SPACE)
    _write(
        work / "E.yaml",
        {
            "space": "space.yaml",
            "evaluator": TRAIN,
            "objectives": [{"metric": "accuracy"}, {"metric": "macs"}],
            "sampler": {"kind": "random", "seed": 0},
            "trials": 2,
        },
    )
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["search", "work/E.yaml", "--no-report"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    # the resolved places first, then one plain line per event (the output is not a terminal)
    assert "  space      work/space.yaml\n" in out
    assert "  storage    journal work/runs/E/study.journal\n" in out
    assert "  report     work/reports/E\n" in out
    assert "study E: 0/2 evaluated\n" in out
    assert "trial 0 started: " in out and "trial 0 epoch 1: accuracy 0." in out
    assert "(1/2 evaluated, ETA " in out and "(2/2 evaluated)" in out
    assert "best so far (" in out and "━" in out  # the closing front table
    assert "\r" not in out and "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━" not in out.split("the study:")[0]
    assert (work / "runs" / "E" / "study.journal").is_file()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "reports").exists()

    monkeypatch.chdir(work)  # the same study from the experiment's own folder
    listed = runner.invoke(app, ["trials", "E.yaml", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert data["study"] == "E" and data["counts"]["evaluated"] == 2 and len(data["trials"]) == 2
    assert {"trial", "outcome", "accuracy", "macs", "spec_hash"} <= set(data["trials"][0])

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = runner.invoke(app, ["search", "../work/E.yaml", "--json", "--no-report"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)  # stdout is the JSON alone; the rest went to stderr
    assert summary["counts"]["evaluated"] == 2 and summary["this_run"] == {}
    assert [row["trial"] for row in summary["front"]] and summary["budget"] == 2
    hint = " ".join(again.stderr.split())
    assert "the study already has its 2 evaluated trials" in hint
    assert "archsearch search ../work/E.yaml trials=4" in hint
    report = runner.invoke(app, ["report", "../work/E.yaml"])
    assert report.exit_code == 0, report.output
    assert (work / "reports" / "E" / "index.html").is_file()  # the experiment's own report folder
    assert not Path("reports").exists() and not (tmp_path / "reports").exists()


def test_a_finished_study_says_nothing_was_run_in_python_as_on_the_command_line(tmp_path, monkeypatch):
    """``run_search(..., trials=1)`` on a study that has 2 evaluations ran nothing and said nothing
    (the CLI said so, and named a budget that still ran nothing: its own ``trials`` doubled):
    now a :class:`NothingRun` warning and ``summary.nothing_run``; the CLI prints one hint line
    (not the warning too) whose budget runs more."""
    monkeypatch.chdir(tmp_path)
    exp = _quick(tmp_path, trials=2)
    first = run_search(load_experiment(exp))
    assert not first.nothing_run and first.evaluated == 2
    with pytest.warns(NothingRun) as caught:
        summary = run_search(load_experiment(exp), trials=1)
    assert summary.nothing_run and summary.outcomes == {} and summary.budget == 1
    assert [str(w.message) for w in caught] == [
        "E: the study already has 2 evaluated trials (the budget: 1), so nothing was run; to evaluate "
        "more, raise the budget: run_search(experiment, trials=3)"
    ]
    result = runner.invoke(app, ["search", str(exp), "trials=1", "--no-report"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning:" not in text and text.count("nothing was run") == 1
    assert text.endswith(
        "the study already has 2 evaluated trials (the budget: 1), so nothing was run; to evaluate more, "
        f"raise the budget: archsearch search {exp} trials=3"
    )
    more = run_search(load_experiment(exp), trials=3)  # the budget named runs one more
    assert not more.nothing_run and more.evaluated == 3


def test_relative_paths_are_read_from_the_experiment_file(tmp_path, monkeypatch):
    project = tmp_path / "project"
    _write(project / "spaces" / "s.yaml", SPACE)
    (project / "images").mkdir()
    data = {
        "space": "../spaces/s.yaml",
        "data": {"kind": "imagefolder", "root": "../images"},
        "objectives": [{"metric": "accuracy"}],
        "backend": {"storage": "sqlite:///../db/x.db"},
    }
    exp_file = _write(project / "experiments" / "E.yaml", data)
    monkeypatch.chdir(tmp_path)
    exp = load_experiment(exp_file.relative_to(tmp_path))
    assert exp.space == str(project / "spaces" / "s.yaml")
    assert exp.data.root == str(project / "images")  # type: ignore[union-attr]
    assert exp.storage_url == f"sqlite:///{project / 'db' / 'x.db'}"
    # in a folder named experiments/, the defaults go beside it: the project's runs/ and reports/
    assert exp.run_path == project / "runs" / "E" and exp.report_path == project / "reports" / "E"
    # paths on the command line are the shell's: read from the current directory
    moved = load_experiment(exp_file, ["run_dir=out", "report=rep"])
    assert moved.run_path == tmp_path / "out" and moved.report_path == tmp_path / "rep"
    plain = _write(tmp_path / "w" / "F.yaml", {"space": "../project/spaces/s.yaml", **QUICK})
    assert load_experiment(plain).run_path == tmp_path / "w" / "runs" / "F"


def test_path_errors_name_the_experiment_line_before_any_progress(tmp_path):
    exp = tmp_path / "E.yaml"
    exp.write_text("space: missing.yaml\n" + yaml.safe_dump(QUICK))
    result = runner.invoke(app, ["search", str(exp)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: {exp}:1: space: the space file {tmp_path / 'missing.yaml'} does not exist "
        f"(a relative path is read from the file's folder, {tmp_path}/)\n"
    )
    text = (
        f"space: {tmp_path / 'E.yaml'}\n"  # any file: the data root is checked first
        "data: {kind: cifar10, root: nowhere}\n"
        "objectives: [{metric: accuracy}]\n"
    )
    bad = tmp_path / "D.yaml"
    bad.write_text(text)
    result = runner.invoke(app, ["search", str(bad)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        f"error: {bad}:2: data.root: the data root {tmp_path / 'nowhere'} does not exist"
    )


def test_a_space_or_a_spec_given_to_search_says_what_it_is(tmp_path):
    space = _write(tmp_path / "s.yaml", SPACE)
    result = runner.invoke(app, ["search", str(space)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    first, *hint = result.stderr.splitlines()
    assert first.startswith(f"error: {space}:1: this is a search space, not an experiment")
    suggested = yaml.safe_load("\n".join(hint))
    assert suggested["space"] == str(space) and suggested["objectives"][0]["metric"] == "accuracy"
    assert load_experiment(suggested).trials == 20  # the experiment shown is a valid one
    spec = ROOT / "archsearch" / "zoo" / "deit-ti.yaml"
    result = runner.invoke(app, ["search", str(spec)])
    assert result.exit_code == 2 and "this is an architecture spec (one network, no choices)" in result.stderr
    result = runner.invoke(app, ["search", "deit-ti"])
    assert result.exit_code == 2 and "deit-ti is an architecture of the zoo" in result.stderr


# --------------------------------------------------------------------------- Optuna's own tools


def test_optuna_reads_the_metric_names_and_duplicates_can_be_left_out(tmp_path):
    two = {**SPACE, "stages": [{**SPACE["stages"][0], "mixer": "conv"}, SPACE["stages"][1]]}  # 2 members
    exp = load_experiment(
        {
            "name": "d",
            "space": two,
            **QUICK,
            "sampler": {"kind": "random", "seed": 2},  # draws one member twice: the ledger redraws it
            "trials": 2,
            "run_dir": str(tmp_path),
        }
    )
    study = run_search(exp).study
    loaded = _journal(tmp_path / "study.journal", "d")
    assert loaded.metric_names == ["grad_norm", "macs"]
    assert list(loaded.trials_dataframe(multi_index=True)["values"].columns) == ["grad_norm", "macs"]
    duplicates = [t for t in study.trials if t.user_attrs["outcome"] == "duplicate"]
    assert len(duplicates) == 1 and study.trials[2].user_attrs["redraw_of"] == 1
    assert all(t.state.name == "PRUNED" for t in duplicates)  # never a COMPLETE copy (issue 19)
    view = without_duplicates(loaded)
    assert len(view.trials) == len(study.trials) - len(duplicates)
    assert view.metric_names == ["grad_norm", "macs"] and view.study_name == "d"
    assert {t.number for t in view.best_trials} <= {t.number for t in view.trials}
    assert all(t.user_attrs["outcome"] != "duplicate" for t in view.best_trials)
    assert load_study(str(tmp_path / "study.journal")).metric_names == ["grad_norm", "macs"]


def test_without_duplicates_logs_nothing():
    """Optuna logs "A new study created in memory" at INFO for every study it makes; the internal
    copy must not (it printed that line amid `archsearch` output), and Optuna's verbosity is kept."""
    import logging

    study = optuna.create_study(directions=["maximize"], study_name="s")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        copy = without_duplicates(study)
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
        optuna.create_study()  # the handler sees what Optuna logs: this one does log the line
    finally:
        logger.removeHandler(handler)
        optuna.logging.set_verbosity(before)
    assert len(copy.trials) == 1 and copy.study_name == "s"
    created = [r for r in records if "A new study created" in r.getMessage()]
    assert len(created) == 1, [r.getMessage() for r in records]


# --------------------------------------------------------------------------- early stopping


def test_a_tie_is_not_dominance():
    done = [Curve(0, (100.0, 5.0), (0.5, 0.7))]
    kwargs = {"min_trials": 1, "warmup_epochs": 1}
    assert dominated_at(2, 0.7, (100.0, 5.0), done, **kwargs) is None  # equal accuracy, equal costs
    assert dominated_at(2, 0.7, (100.0, 6.0), done, **kwargs) == (done[0], 0.7)  # as good, cheaper
    assert dominated_at(2, 0.69, (100.0, 5.0), done, **kwargs) == (done[0], 0.7)  # better, same cost
    assert dominated_at(2, 0.6, (90.0, 6.0), done, **kwargs) is None  # cheaper on one cost: a trade-off
    assert dominated_at(2, 0.7, (100.0, 5.0), done, margin=0.01, **kwargs) is None


def test_the_docs_say_dominance_is_on_by_default_and_ties_go_on():
    from archsearch.search import EarlyStopping

    doc = " ".join((EarlyStopping.__doc__ or "").split())
    assert "on by default for multi-objective searches" in doc and "A tie is not dominance" in doc
    text = " ".join(README.split())
    assert "on by default for multi-objective searches" in text and "a tie is not dominance" in text
    assert load_experiment({"space": SPACE, "objectives": [{"metric": "accuracy"}, {"metric": "macs"}]})


# --------------------------------------------------------------------------- small things


def test_version():
    import archsearch

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"archsearch {archsearch.__version__}\n"


def test_validate_json():
    result = runner.invoke(app, ["validate", "deit-ti", "cvt-13", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["deit-ti", "cvt-13"]
    assert rows[1]["blocks"] == 13 and rows[1]["input"] == [3, 224, 224] and rows[1]["num_classes"] == 1000


def test_ctrl_c_says_interrupted_once(tmp_path, monkeypatch):
    calls: list = []
    real = evaluate_module.zero_cost_scores

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "zero_cost_scores", interrupt)
    exp = _quick(tmp_path, trials=3)
    result = runner.invoke(app, ["search", str(exp), "--no-report"])
    assert result.exit_code == 130, result.output
    assert "trial 1 interrupted: stopped by Ctrl-C; retried on resume" in result.stdout
    assert "interrupted: interrupted" not in result.output
    assert result.stderr.startswith("stopped by Ctrl-C: completed trials are stored")


# --------------------------------------------------------------------------- a resumed space


def _space_study(tmp_path: Path, space: dict) -> tuple[Path, Path]:
    """An experiment on the space file ``tmp_path/space.yaml`` (written from ``space``), searched
    for 4 trials; (the experiment, the space file)."""
    space_file = _write(tmp_path / "space.yaml", space)
    exp = _write(
        tmp_path / "E.yaml",
        {"space": "space.yaml", **QUICK, "sampler": {"kind": "random", "seed": 0}, "trials": 4},
    )
    first = runner.invoke(app, ["search", str(exp), "--no-report"])
    assert first.exit_code == 0, first.output
    return exp, space_file


def test_a_resumed_space_with_other_choices_is_refused_before_a_trial(tmp_path):
    exp, space_file = _space_study(tmp_path, tiny_space(dims=(8, 16)))
    journal = tmp_path / "runs" / "E" / "study.journal"
    before = len(_journal(journal).trials)
    changed = tiny_space(dims=(8, 16, 24))
    changed["stages"][0]["mlp_ratio"] = {"choice": [2, 4, 8], "per_block": True}  # a per-block draw
    _write(space_file, changed)
    for _ in range(2):  # each attempt: the same error, and nothing stored
        result = runner.invoke(app, ["search", str(exp), "--no-report", "-n", "6"])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "dynamic value space" not in result.output
        lines = yaml.safe_dump(changed).splitlines()
        dim_line = 1 + next(i for i, line in enumerate(lines) if line.strip() == "dim:")
        assert f"{space_file}:{dim_line}: stages[0].dim: " in " ".join(result.stderr.split())
        assert "'stages.0.dim' as choices [8, 16]; the space now draws it as choices [8, 16, 24]" in (
            " ".join(result.stderr.split())
        )
        assert result.stderr.count("mlp_ratio") == 2  # one issue for the per-block draw
        assert "'stages.0.blocks.*.mlp_ratio' as choices [2, 4]" in " ".join(result.stderr.split())
        assert "--fresh" in result.stderr and "study name" in result.stderr
        trials = _journal(journal).trials
        assert len(trials) == before and all(t.state.name != "RUNNING" for t in trials)
    fresh = runner.invoke(app, ["search", str(exp), "--no-report", "--fresh"])
    assert fresh.exit_code == 0, fresh.output


def test_a_resumed_space_with_another_int_range_goes_on(tmp_path):
    space = tiny_space(dims=(8, 16))
    space["stages"][1]["dim"] = {"int": [24, 32], "step": 8}
    exp, space_file = _space_study(tmp_path, space)
    space["stages"][1]["dim"] = {"int": [16, 40], "step": 8}  # other bounds: Optuna stores them
    _write(space_file, space)
    result = runner.invoke(app, ["search", str(exp), "--no-report", "-n", "6"])
    assert result.exit_code == 0, result.output
    assert "6 evaluated" in result.stdout
