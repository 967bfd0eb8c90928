"""The README stays true: its grammar reference is the schema's, its examples build."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import archsearch
from archsearch.spec._docs import schema_markdown

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_grammar_reference_is_generated_from_the_schema():
    section = README.split("<!-- schema:start -->\n")[1].split("<!-- schema:end -->")[0]
    assert section == schema_markdown(), "run `archsearch schema --markdown` and paste it into the README"


def test_readme_yaml_examples_build(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    for i, text in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(text)
        model = archsearch.build(archsearch.load_spec(path))
        size = model.plan.input_shape
        assert model(torch.randn(1, size.channels, size.height, size.width)).shape == (1, model.num_classes)


def test_readme_zoo_table_matches_the_zoo():
    rows = dict(re.findall(r"^\| `([\w-]+)` \| .*? \| ([\d,]+) \|$", README, flags=re.M))
    assert set(rows) == set(archsearch.zoo_names())
    with torch.device("meta"):
        for name, count in rows.items():
            assert sum(p.numel() for p in archsearch.create_model(name).parameters()) == int(
                count.replace(",", "")
            )
