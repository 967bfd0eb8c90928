"""Bad input the QA passes found after issue 17: each met with one ``error:`` line in archsearch's
form (what was wrong, the value got, what would work), exit status 2 from the CLI, no traceback,
and nothing already stored lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import archsearch
from archsearch import SpecError
from archsearch.cli import app
from archsearch.space import load_space

runner = CliRunner()

SPACE = {
    "input": {"size": 16, "channels": 1},
    "stages": [
        {
            "embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1},
            "dim": {"choice": [8, 16, 24, 32]},
            "depth": 1,
            "mixer": "conv",
        }
    ],
    "head": {"num_classes": 10},
}


def _experiment(root: Path, name: str = "exp", storage: str = "study.journal", **extra: Any) -> Path:
    """A two-trial experiment on MACs alone (one training step a member): fast to search."""
    path = root / f"{name}.yaml"
    data = {
        "space": SPACE,
        "objectives": [{"metric": "macs"}],
        "evaluator": {"kind": "train", "steps": 1, "batch_size": 16},
        "backend": {"storage": storage},
        "trials": 2,
        "report": str(root / "report"),
        **extra,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def _error(args: list[str]) -> str:
    """Run the CLI; assert exit 2, exactly one ``error:`` line and no traceback; that line."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = result.output.replace("\n ", " ")
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return " ".join(text.split())


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``exp.yaml`` and its finished two-trial study (``study.journal``)."""
    root = tmp_path_factory.mktemp("searched")
    result = runner.invoke(app, ["search", str(_experiment(root)), "--no-report"])
    assert result.exit_code == 0, result.output
    return root


# ----------------------------------------------------------------- 1: a storage without the study


@pytest.mark.parametrize("url", ["sqlite:///{}/nope.db", "journal:{}/nope.journal"])
def test_trials_on_a_missing_storage_file_says_so(tmp_path: Path, url: str) -> None:
    url = url.format(tmp_path)
    line = _error(["trials", url])
    file = url.split(":", 1)[1].removeprefix("///")
    assert f"{url}: no such storage file: {file} does not exist" in line
    assert "allowed: none" not in line
    assert "allowed: the storage file a search wrote (runs/<experiment>/study.journal" in line
    assert "or the experiment .yaml" in line
    assert list(tmp_path.iterdir()) == []  # reading creates nothing


@pytest.mark.parametrize("name", ["empty.journal", "empty.db"])
def test_trials_on_a_storage_holding_no_study_says_so(tmp_path: Path, name: str) -> None:
    """An empty journal or SQLite file: the error says it holds no study, and the file is left as it
    was (an empty SQLite file got Optuna's tables from the read-only command)."""
    (tmp_path / name).write_bytes(b"")
    for source in (str(tmp_path / name), f"sqlite:///{tmp_path / name}")[: 1 + name.endswith(".db")]:
        line = _error(["trials", source])
        assert f"{name}: the storage holds no study yet" in line
        assert "allowed: a storage that `archsearch search` has written to" in line
        line = _error(["trials", source, "--study", "q"])
        assert "no study named 'q' in the storage (it holds no study yet)" in line
        assert "allowed: none" not in line
        assert (tmp_path / name).read_bytes() == b"" and [p.name for p in tmp_path.iterdir()] == [name]


def test_trials_of_an_experiment_never_searched_says_how_to_search_it(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    line = _error(["trials", str(exp)])
    assert f"no study named 'exp' in journal:{tmp_path}/study.journal" in line
    assert f"allowed: run `archsearch search {exp}` first" in line
    assert not (tmp_path / "study.journal").exists()


# ----------------------------------------------------------------- 2: report's arguments first


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("abc", "--reference: not a number (got 'abc')"),
        ("1,,2", "--reference: an empty value between commas (got '1,,2')"),
        ("nan,1", "--reference: must be finite (got 'nan,1')"),
        ("1,inf", "--reference: must be finite (got '1,inf')"),
        ("", "--reference: one value per objective, none given (got '')"),
    ],
)
def test_a_bad_reference_is_refused_before_the_study_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, says: str
) -> None:
    import archsearch.search

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the study was read")

    monkeypatch.setattr(archsearch.search, "load_results", never)
    monkeypatch.setattr(archsearch.search, "load_study", never)
    line = _error(["report", str(tmp_path / "nope.yaml"), f"--reference={given}", "-o", str(tmp_path / "o")])
    assert says in line
    assert "allowed: one number per objective, comma-separated, e.g. --reference=0.5,2e8,30" in line
    assert not (tmp_path / "o").exists()


def test_a_reference_of_the_wrong_length_is_refused_before_the_trials_are_read(
    searched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import archsearch.search

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the trials were read")

    monkeypatch.setattr(archsearch.search, "load_results", never)
    line = _error(["report", str(searched / "exp.yaml"), "--reference=1,2", "-o", str(tmp_path / "o")])
    assert "--reference: one value per objective (macs), 2 given (got '1,2'); allowed: 1 number, e.g." in line
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------- 3: data that fails to load


def _no_images(root: Path) -> Path:
    """An image folder whose one class folder holds no image: it fails when the data is loaded."""
    (root / "images" / "a").mkdir(parents=True)
    return root / "images"


@pytest.mark.parametrize("storage", ["runs/q/study.journal", "runs/q/study.db"])
def test_a_search_whose_data_fails_leaves_no_study_behind(tmp_path: Path, storage: str) -> None:
    data = {"kind": "imagefolder", "root": str(_no_images(tmp_path))}
    exp = _experiment(tmp_path, storage=storage, data=data)
    line = _error(["search", str(exp), "--no-report"])
    assert "has no image files" in line
    assert not (tmp_path / "runs").exists()  # no empty study that the next run would resume


def test_a_failed_resume_keeps_the_stored_study(searched: Path, tmp_path: Path) -> None:
    """The same failure on a study that holds trials: the study file is left as it was."""
    before = (searched / "study.journal").read_bytes()
    (tmp_path / "study.journal").write_bytes(before)
    data = {"kind": "imagefolder", "root": str(_no_images(tmp_path))}
    exp = _experiment(tmp_path, data=data)
    assert "has no image files" in _error(["search", str(exp), "--no-report"])
    assert (tmp_path / "study.journal").read_bytes() == before


# ----------------------------------------------------------------- 5: set_dynamic_size


@pytest.mark.parametrize("given", ["yes", 1, None, 0.0])
def test_set_dynamic_size_takes_only_a_bool(given: Any) -> None:
    model = archsearch.create_model("resnet-50", input_size=32, num_classes=10)
    with pytest.raises(TypeError, match=r"set_dynamic_size: expected True or False \(got .*\)"):
        model.set_dynamic_size(given)
    assert model.dynamic_size is False  # unchanged
    features = archsearch.create_model("resnet-50", input_size=32, features_only=True)
    with pytest.raises(TypeError, match=r"set_dynamic_size: expected True or False"):
        features.set_dynamic_size(given)
    model.set_dynamic_size(True)
    assert model.dynamic_size is True


# ----------------------------------------------------------------- 6: pooling attention's strides

FIRST = {"embed": {"kind": "conv", "kernel": 3, "stride": 2, "norm": "none"}, "dim": 16, "depth": 1}


@pytest.mark.parametrize("field", ["q_stride", "kv_stride"])
def test_a_pooling_stride_larger_than_the_map_is_refused(field: str) -> None:
    """As the attention mixer refuses it (kinds/_mixer_attention.py): the field, the map, the bound."""
    spec = {
        "input": {"size": 16},
        "stages": [{**FIRST, "mixer": {"kind": "pooling", "heads": 2, field: 64}}],
        "head": {"num_classes": 10},
    }
    with pytest.raises(
        SpecError,
        match=rf"stages\[0\]\.mixer\.{field}: {field} 64 is larger than the 8x8 token map block 0 sees, "
        r"so the pooling would only sample its first row and column \(got 64\); allowed: at most 8$",
    ):
        archsearch.load_spec(spec)
    spec["stages"][0]["mixer"][field] = 8  # the whole map pooled to one token is allowed
    archsearch.load_spec(spec)


def test_a_per_block_pooling_stride_names_its_block() -> None:
    spec = {
        "input": {"size": 16},
        "stages": [{**FIRST, "depth": 2, "mixer": {"kind": "pooling", "heads": 2, "kv_stride": [1, 9]}}],
        "head": {"num_classes": 10},
    }
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.kv_stride\[1\]: kv_stride 9 is larger"):
        archsearch.load_spec(spec)


# ----------------------------------------------------------------- 7: a misspelt choice node


@pytest.mark.parametrize(
    ("node", "meant"),
    [
        ({"choise": [2, 4]}, "choice"),
        ({"choices": [2, 4], "per_block": True}, "choice"),
        ({"in": [1, 2]}, "int"),
        ({"flaot": [1.0, 4.0], "log": True}, "float"),
    ],
)
def test_a_misspelt_choice_node_suggests_the_key(tmp_path: Path, node: dict[str, Any], meant: str) -> None:
    typo = next(k for k in node if k not in ("per_block", "log"))
    mixer = {"kind": "attention", "heads": 2}
    stage = {**SPACE["stages"][0], "mixer": mixer, "mlp_ratio": node}  # type: ignore[dict-item]
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**SPACE, "stages": [stage]}))
    line = _error(["space", str(path)])
    assert (
        f"stages[0].mlp_ratio.{typo}: not a choice node key (did you mean '{meant}'?) (got '{typo}'); "
        "allowed: choice, int, float (with per_block, step, log)" in line
    )
    assert f"{path}:" in line


def test_a_mapping_with_other_keys_is_left_to_the_schema() -> None:
    """Only a mapping that looks like a node is taken for a misspelt one: a mixer with a stray key
    gets the schema's own unknown-key error."""
    stage = {**SPACE["stages"][0], "mixer": {"kind": "conv", "choise": 1}}  # type: ignore[dict-item]
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.choise: unknown key 'choise'") as caught:
        load_space({**SPACE, "stages": [stage]}).default()
    assert "not a choice node key" not in str(caught.value)


# ----------------------------------------------------------------- 4: a resume with another evaluator


def test_a_resume_with_another_evaluator_is_refused(searched: Path, tmp_path: Path) -> None:
    """The study records its evaluator; a resume whose evaluator would score differently names each
    changed field and is refused (nothing stored changes); the flag mixes them, with a warning."""
    study = tmp_path / "study.journal"
    study.write_bytes((searched / "study.journal").read_bytes())
    exp = _experiment(tmp_path, trials=3)
    before = study.read_bytes()
    result = runner.invoke(app, ["search", str(exp), "evaluator.steps=2", "evaluator.lr=0.01", "--no-report"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "evaluator.lr: study 'exp' was searched with lr 0.002" in errors[1]
    line = " ".join(result.output.split())
    assert (
        "<command line> evaluator.steps=2: evaluator.steps: study 'exp' was searched with steps 1; "
        "accuracies under other evaluator settings are not comparable (got 2); allowed: 1 (as stored), "
        "--fresh to start a new study, another study name, or --allow-changed-evaluator to mix them"
    ) in line
    assert study.read_bytes() == before
    # settings that change how a run goes, not what it measures, may change
    result = runner.invoke(app, ["search", str(exp), "evaluator.eval_batch_size=32", "--no-report"])
    assert result.exit_code == 0, result.output
    from archsearch.search import load_study

    first = len(load_study(str(study)).trials)  # duplicates are trials too
    result = runner.invoke(
        app, ["search", str(exp), "evaluator.steps=2", "trials=4", "--allow-changed-evaluator", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"warning: study 'exp': evaluator steps 1 -> 2 from trial {first} on" in said
    loaded = load_study(str(study))
    assert loaded.user_attrs["experiment"]["evaluator"]["steps"] == 2
    assert loaded.user_attrs["evaluator_changes"] == [{"from_trial": first, "changes": {"steps": [1, 2]}}]


def test_a_resume_with_another_evaluator_kind_is_refused(searched: Path, tmp_path: Path) -> None:
    (tmp_path / "study.journal").write_bytes((searched / "study.journal").read_bytes())
    exp = _experiment(tmp_path, evaluator={"kind": "zero_cost"})
    line = _error(["search", str(exp), "--no-report"])
    assert "evaluator.kind: study 'exp' was searched with kind 'train'" in line
    assert "(got 'zero_cost'); allowed: 'train' (as stored)" in line


# ----------------------------------------------------------------- break-it: features_only


@pytest.mark.parametrize("given", ["yes", 1, None])
def test_features_only_takes_only_a_bool(given: Any) -> None:
    with pytest.raises(TypeError, match=r"features_only: expected True or False \(got .*\)"):
        archsearch.create_model("resnet-50", input_size=32, features_only=given)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ((0, 1, 5), r"out_indices \[0, 1, 5\]: 5 is not a stage of this model's 4"),
        ((-9,), r"out_indices \[-9\]: -9 is not a stage of this model's 4"),
        ((), r"out_indices \[\]: no stage chosen"),
        ((1, -3), r"out_indices \[1, -3\]: stage 1 is chosen twice"),
    ],
)
def test_out_indices_say_what_is_wrong(given: tuple[int, ...], says: str) -> None:
    with pytest.raises(ValueError, match=says + r" \(got .*\); allowed: distinct indices in -4\.\.3"):
        archsearch.create_model("resnet-50", input_size=32, features_only=True, out_indices=given)


# ----------------------------------------------------------------- break-it: trials, budgets


def test_epochs_and_steps_together_say_how_to_drop_one(tmp_path: Path) -> None:
    line = _error(["trials", str(_experiment(tmp_path)), "--set", "evaluator.epochs=2"])
    assert (
        "evaluator: set exactly one of epochs and steps (got epochs=2, steps=1); allowed: epochs or "
        "steps, not both (an override ~KEY drops a key: ~evaluator.steps)"
    ) in line


@pytest.mark.parametrize("target", ["missing/rows.csv", "."])
def test_trials_csv_to_a_path_that_cannot_be_written(searched: Path, tmp_path: Path, target: str) -> None:
    """Checked before the study is read: one line naming the path, no traceback."""
    path = tmp_path / target
    line = _error(["trials", str(searched / "exp.yaml"), "--csv", str(path)])
    why = "is a folder" if target == "." else f"its folder {path.parent} does not exist"
    assert f"--csv: cannot write {path}: {why}" in line
    assert "allowed: a file path in an existing folder" in line


# ----------------------------------------------------------------- break-it: export

TINY = {
    "input": {"size": 16, "channels": 1},
    "stages": [{"embed": {"kind": "conv", "kernel": 3, "stride": 2}, "dim": 8, "depth": 1, "mixer": "conv"}],
    "head": {"num_classes": 10},
}


@pytest.mark.parametrize("opset", [3, 99])
def test_an_onnx_opset_out_of_range_is_refused_before_anything_is_written(tmp_path: Path, opset: int) -> None:
    """It was exported at another opset (18) without a word."""
    target = tmp_path / "m.onnx"
    with pytest.raises(archsearch.ExportError, match=rf"--opset: ONNX opset {opset} cannot be written "):
        archsearch.export(TINY, "onnx", target, opset=opset)
    assert not target.exists()
    line = _error(["export", str(tmp_path / "nope.yaml"), "--opset", str(opset), "-o", str(target)])
    assert f"(got {opset}); allowed: 7 to " in line


# ----------------------------------------------------------------- break-it: train


@pytest.mark.parametrize("where", ["file", "file/run"])
def test_train_into_a_file_is_refused_before_training(tmp_path: Path, where: str) -> None:
    """``-o`` naming a file (or a folder below one) was a FileExistsError traceback after the data
    was loaded."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    (tmp_path / "file").write_text("keep me")
    line = _error(["train", str(spec), "epochs=1", "-o", str(tmp_path / where)])
    assert f"{tmp_path / 'file'} is a file, not a folder" in line
    assert "allowed: a new folder or a training run's folder" in line
    assert (tmp_path / "file").read_text() == "keep me"
