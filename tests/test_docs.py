"""The README stays true: its grammar reference is the schema's, its examples build."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import yaml

import archsearch
from archsearch.search import load_experiment
from archsearch.space import RandomSuggest, load_space
from archsearch.spec import schema_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_grammar_reference_is_generated_from_the_schema():
    section = README.split("<!-- schema:start -->\n")[1].split("<!-- schema:end -->")[0]
    assert section == schema_markdown(), "run `archsearch schema --markdown` and paste it into the README"


def test_readme_yaml_examples_build(tmp_path):
    """Spec examples build and run; space examples load and sample; the experiment shown is the
    shipped quickstart."""
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
    kinds = {"spec": 0, "space": 0, "experiment": 0}
    for i, text in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(text)
        if text.startswith("backend:"):  # a backend block: the quickstart runs on it unchanged otherwise
            kinds["experiment"] += 1
            exp = yaml.safe_load((ROOT / "experiments" / "quickstart.yaml").read_text())
            assert (
                load_experiment({**exp, **yaml.safe_load(text)}).backend.kind
                == yaml.safe_load(text)["backend"]["kind"]
            )
            continue
        if text.startswith("# experiments/"):  # a shipped experiment, shown as it is
            kinds["experiment"] += 1
            shipped = (ROOT / text.split("\n", 1)[0].removeprefix("# ")).read_text()
            assert yaml.safe_load(text) == yaml.safe_load(shipped)
            continue
        if text.startswith("# train.yaml"):  # a training config of `archsearch train`
            from archsearch.train import load_train_config

            assert load_train_config(path).mixup is not None
            continue
        if "objectives:" in text:
            kinds["experiment"] += 1
            shipped = (ROOT / "experiments" / "quickstart.yaml").read_text()
            assert yaml.safe_load(text) == yaml.safe_load(shipped)
            continue
        if "choice:" in text or "constraints:" in text:
            kinds["space"] += 1
            space = load_space(path)
            assert space.size() > 1
            spec = space.candidate(RandomSuggest(0)).spec
            assert spec is not None
        else:
            kinds["spec"] += 1
            spec = archsearch.load_spec(path)
        model = archsearch.build(spec)
        size = model.plan.input_shape
        assert model(torch.randn(1, size.channels, size.height, size.width)).shape == (1, model.num_classes)
    assert kinds["spec"] >= 2 and kinds["space"] >= 1 and kinds["experiment"] >= 1


def test_readme_zoo_table_matches_the_zoo():
    rows = dict(re.findall(r"^\| `([\w-]+)` \| .*? \| ([\d,]+) \|$", README, flags=re.M))
    assert set(rows) == set(archsearch.zoo_names())
    with torch.device("meta"):
        for name, count in rows.items():
            assert sum(p.numel() for p in archsearch.create_model(name).parameters()) == int(
                count.replace(",", "")
            )


def test_readme_grammar_table_names_every_registered_mixer_under_its_family():
    """The family table at the top of the grammar is prose, not generated: each registered mixer
    must still appear (as `name`) in its family's row, so a new kind cannot be left out of it."""
    from archsearch.kinds import MIXERS

    grammar = README.split("## The grammar")[1]
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", grammar, flags=re.M))
    for name in MIXERS.names():
        family = MIXERS.get(name).family
        assert family in rows, f"README's grammar table has no row for family {family!r}"
        assert f"`{name}`" in rows[family], f"README's grammar table lacks mixer {name!r} under {family!r}"


def test_readme_error_examples_of_cheap_commands_are_the_real_output(monkeypatch):
    """Every README example ``$ archsearch search|validate|compile FILE ...`` on a file of the
    repository followed by an ``error:`` line (they fail while loading, in a second) prints exactly
    that line."""
    import shlex

    from typer.testing import CliRunner

    from archsearch.cli import app

    monkeypatch.chdir(ROOT)
    example = r"^\$ archsearch ((?:search|validate|compile) (\S+).*)\n(error: .*)$"
    found = re.findall(example, README, flags=re.M)
    found = [(command, says) for command, file, says in found if (ROOT / file).is_file()]
    assert found, "README has no such example any more"
    for command, says in found:
        result = CliRunner().invoke(app, shlex.split(command))
        assert result.exit_code == 2, (command, result.output)
        assert " ".join(result.output.split()) == says, command
