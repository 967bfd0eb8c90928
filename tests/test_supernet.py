"""The weight-sharing supernet: members run through it equal the stand-alone models with the
copied weights; weights really are shared; choices it cannot share are refused with their line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archsearch import build, load_spec
from archsearch.errors import SpecError
from archsearch.kinds import MIXERS, Share
from archsearch.space import RandomSuggest, load_space
from archsearch.spec import spec_hash
from archsearch.supernet import Supernet

SPACES = Path(__file__).resolve().parent.parent / "search_spaces"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# every shipped space; the large ones at a reduced input size and with fewer members
REDUCED = {"cvt13_nas": (64, 3), "hybrid_stages": (112, 3)}


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACES.glob("*.yaml")))
def test_member_through_supernet_equals_standalone(name: str) -> None:
    size, members = REDUCED.get(name, (32, 12))
    space = load_space(SPACES / f"{name}.yaml", input_size=size)
    net = Supernet(space).eval()
    suggest = RandomSuggest(7)
    for _ in range(members):
        plan = space.candidate(suggest).plan
        assert plan is not None
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            through = net(x, plan)
            alone = net.member(plan).eval()(x)
        assert (through - alone).abs().max().item() <= 1e-5


def test_every_random_member_is_covered() -> None:
    space = load_space(SPACES / "hybrid_small.yaml")
    net = Supernet(space)
    for candidate in space.random_samples(150, seed=3):
        assert candidate.plan is not None
        net.tensors(candidate.plan)  # raises SupernetError when a slot is missing or too small


def _with(space, **picks):
    """A member whose draws take ``picks[last name part]`` (others: the first option)."""

    class Pick:
        def categorical(self, name, choices):
            field = name.rsplit(".", 1)[-1]
            return picks.get(field, choices[0])

        def integer(self, name, low, high, *, step=1, log=False):
            return picks.get(name.rsplit(".", 1)[-1], low)

        def real(self, name, low, high, *, step=None, log=False):
            return low

    plan = space.candidate(Pick()).plan
    assert plan is not None
    return plan


def test_cvt13_member_is_cvt13() -> None:
    space = load_space(SPACES / "cvt13_nas.yaml")
    net = Supernet(space)
    plan = _with(space, kv_stride=2, mlp_ratio=4)
    zoo = build(load_spec("cvt-13"))
    member = net.member(plan)
    assert spec_hash(plan) == spec_hash(zoo.plan)
    assert sum(p.numel() for p in member.parameters()) == sum(p.numel() for p in zoo.parameters())
    assert {k: v.shape for k, v in member.state_dict().items()} == {
        k: v.shape for k, v in zoo.state_dict().items()
    }


def test_nested_widths_share_the_leading_slice_and_train_together() -> None:
    space = load_space(SPACES / "cvt13_nas.yaml", input_size=32)
    net = Supernet(space)
    wide, narrow = _with(space, mlp_ratio=4), _with(space, mlp_ratio=2)
    key = "stages.2.blocks.3.mlp.fc1.weight"
    w, n = net.state_for(wide)[key], net.state_for(narrow)[key]
    assert n.shape[0] * 2 == w.shape[0]
    assert torch.equal(w[: n.shape[0]], n)
    # kv stride 1 and 2 apply the same projection weights
    s1, s2 = _with(space, kv_stride=1), _with(space, kv_stride=2)
    conv = "stages.1.blocks.0.attn.conv_k.conv.weight"
    assert torch.equal(net.state_for(s1)[conv], net.state_for(s2)[conv])
    # one step on the narrow path moves the wide member's shared slice
    before = net.state_for(wide)[key].clone()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    net(torch.randn(2, 3, 32, 32), narrow).sum().backward()
    optimizer.step()
    after = net.state_for(wide)[key]
    assert not torch.equal(after[: n.shape[0]], before[: n.shape[0]])
    assert torch.equal(after[n.shape[0] :], before[n.shape[0] :])


def test_depth_uses_the_first_blocks_and_kernels_the_centre() -> None:
    space = load_space(
        {
            "input": {"size": 32, "channels": 3},
            "stages": [
                {
                    "embed": {"kind": "conv", "kernel": {"choice": [3, 7]}, "stride": 4, "padding": 1},
                    "dim": 16,
                    "depth": {"int": [1, 3]},
                    "mixer": "conv",
                }
            ],
            "head": {"num_classes": 10},
        }
    )
    net = Supernet(space)
    deep, shallow = _with(space, depth=3, kernel=7), _with(space, depth=1, kernel=3)
    d, s = net.state_for(deep), net.state_for(shallow)
    name = "stages.0.blocks.0.conv1.weight"
    assert torch.equal(d[name], s[name]) and "stages.0.blocks.2.conv1.weight" not in s
    big, small = d["stages.0.embed.0.weight"], s["stages.0.embed.0.weight"]
    assert big.shape[-1] == 7 and small.shape[-1] == 3
    assert torch.equal(big[..., 2:5, 2:5], small)


def test_structural_choices_get_their_own_weights() -> None:
    space = load_space(SPACES / "hybrid_small.yaml")
    keys = {key.split("|")[0] for key in Supernet(space).slots if key.startswith("s0.b0:")}
    assert {k.split("/")[1].split("(")[0] for k in keys} == {"conv", "attention", "window", "mhsa"}


def _space_file(tmp_path: Path, size: str) -> Path:
    """A one-stage space whose kv stride is a choice (line 6) and whose input size is ``size``."""
    file = tmp_path / "space.yaml"
    file.write_text(
        f"input: {{size: {size}, channels: 3}}\n"
        "stages:\n"
        "  - embed: {kind: conv, kernel: 3, stride: 2, padding: 1}\n"
        "    dim: 16\n"
        "    depth: 1\n"
        "    mixer: {kind: attention, heads: 2, kv_stride: {choice: [1, 2]}}\n"
        "head: {num_classes: 10}\n"
    )
    return file


def test_unshareable_choice_is_refused_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"space\.yaml:1: .*one input size"):
        Supernet(load_space(_space_file(tmp_path, "{choice: [32, 64]}")))


def test_a_kind_can_refuse_a_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attention = MIXERS.get("attention")
    rule = Share(reuse=("heads",), refuse={"kv_stride": "made up for the test"})
    monkeypatch.setattr(attention, "share", rule)
    with pytest.raises(SpecError, match=r"space\.yaml:6: .*made up for the test"):
        Supernet(load_space(_space_file(tmp_path, "32")))


def test_a_stem_choice_combines_with_the_first_stage_choices(tmp_path: Path) -> None:
    """The first block takes the stem's channels (3 without a stem): every pairing of the stem
    option with the first stage's mixer needs its own slot shapes, and runs through the supernet
    as it runs alone."""
    path = tmp_path / "stem_choice.yaml"
    path.write_text(
        "input: {size: 32, channels: 3}\n"
        "stem: {choice: [null, {kind: deep, channels: [8, 16], pool: none}]}\n"
        "stages:\n"
        "  - {embed: {kind: block, stride: 2}, dim: {choice: [32, 64]}, depth: {int: [1, 2]},\n"
        "     mixer: {choice: [conv, {kind: mhsa, heads: 2}]}}\n"
        "  - {embed: {kind: block, stride: 2}, dim: 64, depth: 1, mixer: conv}\n"
        "head: {pool: avg, num_classes: 10}\n"
    )
    space = load_space(path)
    net = Supernet(space).eval()
    suggest = RandomSuggest(3)
    seen = set()
    for _ in range(40):
        plan = space.candidate(suggest).plan
        assert plan is not None
        seen.add((plan.stem_shape is not None, plan.blocks[0].mixer.kind))
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            through = net(x, plan)
            alone = net.member(plan).eval()(x)
        assert (through - alone).abs().max().item() <= 1e-5
    assert seen == {(False, "conv"), (False, "mhsa"), (True, "conv"), (True, "mhsa")}
