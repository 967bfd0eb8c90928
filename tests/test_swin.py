"""Swin: shifted-window attention and patch merging against straightforward implementations,
swin-t at other resolutions and windows, and malformed window/merge specs."""

from __future__ import annotations

import math
import re
import textwrap

import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch import SpecError
from archsearch.cost import analytic_costs, count_traced
from archsearch.ops import PatchMerging, TransformerBlock, WindowAttention
from archsearch.spec import normalize, window_geometry

from .helpers import randomise_

# --------------------------------------------------------------------------- shifted-window attention


def _region(i: int, size: int, window: int, shift: int) -> int:
    """Which of the three shift regions position ``i`` of a padded side belongs to (timm's slices
    ``[0, -window)``, ``[-window, -shift)``, ``[-shift, end)``; one region where not shifted)."""
    if shift == 0 or i < size - window:
        return 0
    return 1 if i < size - shift else 2


def reference_window_attention(attn: WindowAttention, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Window attention written out: gather, per image and per window, the tokens of the rolled
    and zero-padded map, build each window's logit bias entry by entry (relative offset -> table
    row, -100 between tokens of different shift regions) and attend with an explicit softmax."""
    b, _, c = x.shape
    h, w = hw
    (wh, ww), (sh, sw) = attn.window, attn.shift
    hp, wp = math.ceil(h / wh) * wh, math.ceil(w / ww) * ww
    heads, d = attn.heads, c // attn.heads
    table = attn.relative_position_bias_table
    grid = x.view(b, h, w, c)
    padded = torch.zeros(b, hp, wp, c)
    for i in range(h):  # the cyclic shift: position (i, j) holds token ((i + sh) % h, (j + sw) % w)
        for j in range(w):
            padded[:, i, j] = grid[:, (i + sh) % h, (j + sw) % w]
    out = torch.zeros(b, hp, wp, c)
    for img in range(b):
        for top in range(0, hp, wh):
            for left in range(0, wp, ww):
                cells = [(top + dy, left + dx) for dy in range(wh) for dx in range(ww)]
                tokens = torch.stack([padded[img, i, j] for i, j in cells])
                q, k, v = F.linear(tokens, attn.qkv.weight, attn.qkv.bias).split(c, dim=-1)
                bias = torch.zeros(heads, len(cells), len(cells))
                for p, (qi, qj) in enumerate(cells):
                    for r, (ki, kj) in enumerate(cells):
                        if table is not None:
                            bias[:, p, r] = table[(qi - ki + wh - 1) * (2 * ww - 1) + (qj - kj + ww - 1)]
                        same = _region(qi, hp, wh, sh) == _region(ki, hp, wh, sh) and _region(
                            qj, wp, ww, sw
                        ) == _region(kj, wp, ww, sw)
                        if not same:
                            bias[:, p, r] -= 100.0
                for head in range(heads):
                    part = slice(head * d, (head + 1) * d)
                    logits = q[:, part] @ k[:, part].T * d**-0.5 + bias[head]
                    result = logits.softmax(dim=-1) @ v[:, part]
                    for p, (i, j) in enumerate(cells):
                        out[img, i, j, part] = result[p]
    unrolled = torch.zeros(b, h, w, c)
    for i in range(h):
        for j in range(w):
            unrolled[:, (i + sh) % h, (j + sw) % w] = out[:, i, j]
    return F.linear(unrolled.reshape(b, h * w, c), attn.proj.weight, attn.proj.bias)


WINDOW_CASES = [
    # (height, width, window, shift, relative bias)
    pytest.param(8, 8, 4, False, True, id="8x8-w4"),
    pytest.param(8, 8, 4, True, True, id="8x8-w4-shift"),
    pytest.param(9, 11, 4, True, True, id="9x11-w4-shift-padded"),
    pytest.param(10, 7, 3, False, True, id="10x7-w3-padded"),
    pytest.param(5, 10, 7, True, True, id="5x10-w7-one-side-shrinks"),
    pytest.param(7, 7, 3, True, False, id="7x7-w3-shift-padded-no-bias"),
]


@pytest.mark.parametrize(("h", "w", "window", "shift", "relative"), WINDOW_CASES)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
def test_window_attention_matches_a_per_window_loop(h, w, window, shift, relative, fused):
    dim, heads = 12, 3
    win, sft = window_geometry(window, shift, h, w)
    attn = WindowAttention(dim, heads, (h, w), win, sft, relative=relative)
    randomise_(attn, 0.3)  # a bias table far from zero, so a wrong offset shows
    x = torch.randn(2, h * w, dim)
    with archsearch.fused_attention(fused), torch.no_grad():
        ours = attn(x, (h, w))
        expected = reference_window_attention(attn, x, (h, w))
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-4), (ours - expected).abs().max()


def test_window_geometry_follows_timm():
    assert window_geometry(7, True, 56, 56) == ((7, 7), (3, 3))
    assert window_geometry(7, False, 56, 56) == ((7, 7), (0, 0))
    assert window_geometry(7, True, 7, 7) == ((7, 7), (0, 0))  # the window covers the map: no shift
    assert window_geometry(7, True, 6, 12) == ((6, 7), (0, 3))  # per side
    assert window_geometry(8, True, 16, 9) == ((8, 8), (4, 4))
    assert window_geometry(1, True, 4, 4) == ((1, 1), (0, 0))


def test_the_shift_alternates_and_can_be_given_per_block(tmp_path):
    def plan(shift: str, size: int = 56):
        text = f"""
        input: {{size: {size}}}
        stages:
          - embed: {{kind: patch, stride: 4, norm: layer}}
            dim: 32
            depth: 4
            mixer: {{kind: window, heads: 2, window: 7{shift}}}
        """
        path = tmp_path / "s.yaml"
        path.write_text(textwrap.dedent(text))
        return normalize(archsearch.load_spec(path))

    assert [b.mixer.shift for b in plan("").blocks] == [False, True, False, True]
    assert [b.mixer.shift for b in plan(", shift: false").blocks] == [False] * 4
    assert [b.mixer.shift for b in plan(", shift: [true, true, false, true]").blocks] == [
        True,
        True,
        False,
        True,
    ]
    model = archsearch.build(plan(", shift: [true, true, false, true]"))
    shifts = [m.attn.shift for m in model.modules() if isinstance(m, TransformerBlock)]
    assert shifts == [(3, 3), (3, 3), (0, 0), (3, 3)]
    # a 7x7 map (28 px / 4): the window covers it, nothing shifts, whatever the spec asks
    model = archsearch.build(plan(", shift: [true, true, false, true]", size=28))
    assert all(m.attn.shift == (0, 0) for m in model.modules() if isinstance(m, TransformerBlock))


# --------------------------------------------------------------------------- patch merging


@pytest.mark.parametrize(("h", "w"), [(4, 6), (5, 7), (2, 3)])
def test_patch_merging_matches_official_swin(h, w):
    """Official Swin: x0 = x[0::2, 0::2], x1 = x[1::2, 0::2], x2 = x[0::2, 1::2], x3 = x[1::2, 1::2]
    concatenated on channels (after zero-padding an odd side), LayerNorm, Linear without bias."""
    merge = PatchMerging(6, 10)
    randomise_(merge, 0.5)
    x = torch.randn(2, 6, h, w)
    padded = F.pad(x, (0, w % 2, 0, h % 2)).permute(0, 2, 3, 1)
    parts = [padded[:, 0::2, 0::2], padded[:, 1::2, 0::2], padded[:, 0::2, 1::2], padded[:, 1::2, 1::2]]
    cat = torch.cat(parts, dim=-1)
    expected = F.linear(
        F.layer_norm(cat, (24,), merge.norm.weight, merge.norm.bias, 1e-5), merge.reduction.weight
    )
    out = merge(x)
    assert out.shape == (2, 10, (h + 1) // 2, (w + 1) // 2)
    assert merge.reduction.bias is None
    assert torch.allclose(out, expected.permute(0, 3, 1, 2), atol=1e-5)


# --------------------------------------------------------------------------- swin-t


def _swin(size: int, window: int | None = None) -> archsearch.Spec:
    data = archsearch.load_spec("swin-t").model_dump(exclude_none=True)
    data["input"]["size"] = size
    data["head"]["num_classes"] = 10
    if window is not None:
        for stage in data["stages"]:
            stage["mixer"]["window"] = window
    return archsearch.load_spec(data)


def _train_step(model: torch.nn.Module, size: int) -> None:
    model.train()
    y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    F.cross_entropy(y, torch.tensor([0, 1])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_swin_t_plan_at_224():
    plan = normalize(archsearch.load_spec("swin-t"))
    assert [s.out_shape.as_tuple() for s in plan.stages] == [
        (96, 56, 56),
        (192, 28, 28),
        (384, 14, 14),
        (768, 7, 7),
    ]
    model = archsearch.build(plan)
    attn = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert [a.shift for a in attn] == [(0, 0), (3, 3)] * 5 + [(0, 0)] * 2  # stage 4: 7x7 map, no shift
    assert {a.window for a in attn} == {(7, 7)}
    assert [tuple(a.relative_position_bias_table.shape) for a in attn[::2]] == [
        (169, h) for h in (3, 6, 12, 12, 12, 24)
    ]
    assert plan.head.norm  # timm: LayerNorm on every token, then the average


@pytest.mark.slow
def test_swin_t_at_256_with_window_8_trains():
    spec = _swin(256, window=8)
    model = archsearch.build(spec)
    attn = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert {a.window for a in attn} == {(8, 8)} and attn[1].shift == (4, 4) and attn[-1].shift == (0, 0)
    assert attn[0].relative_position_bias_table.shape == (15 * 15, 3)
    assert all(a.pad == (0, 0) for a in attn)
    _train_step(model, 256)


@pytest.mark.slow
def test_swin_t_at_192_pads_and_trains():
    """At 192 px the maps are 48, 24, 12, 6: stages 1-3 pad to multiples of 7, stage 4's window
    shrinks to the 6x6 map (and does not shift)."""
    model = archsearch.build(_swin(192))
    attn = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert [a.pad for a in attn[::2]] == [(1, 1), (4, 4), (2, 2), (2, 2), (2, 2), (0, 0)]
    assert attn[-1].window == (6, 6) and attn[-1].shift == (0, 0)
    assert attn[-1].relative_position_bias_table.shape == (11 * 11, 24)
    _train_step(model, 192)
    traced = count_traced(model.eval(), (1, 3, 192, 192))
    analytic = analytic_costs(model.plan)
    assert (analytic.params, analytic.macs, analytic.activations) == (
        traced.params,
        traced.macs,
        traced.activations,
    )


def test_odd_maps_merge_with_padding():
    """At 200 px the maps are 50, 25, 13, 7: the merges of 25 and 13 pad the odd side."""
    plan = normalize(_swin(200))
    assert [s.out_shape.height for s in plan.stages] == [50, 25, 13, 7]
    model = archsearch.build(plan).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 200, 200)).shape == (1, 10)


def test_window_with_absolute_or_no_position_embedding(tmp_path):
    text = """
    input: {size: 32}
    stages:
      - embed: {kind: patch, stride: 2}
        dim: 16
        depth: 2
        mixer: {kind: window, heads: 2, window: 4, qkv_bias: false}
        pos_embed: POS
      - {embed: merge, dim: 24, depth: 1, mixer: {kind: window, heads: 3, window: 4}}
    head: {num_classes: 5}
    """
    for pos in ("absolute", "none"):
        path = tmp_path / f"{pos}.yaml"
        path.write_text(textwrap.dedent(text).replace("POS", pos))
        model = archsearch.build(archsearch.load_spec(path))
        first = model.stages[0].blocks[0].attn
        assert first.relative_position_bias_table is None and first.qkv.bias is None
        assert (model.stages[0].pos_embed is not None) == (pos == "absolute")
        assert model.stages[1].blocks[0].attn.relative_position_bias_table is not None
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


# --------------------------------------------------------------------------- malformed specs


BASE = """\
input: {size: 32}
stages:
  - embed: {kind: patch, stride: 4, norm: layer}
    dim: 48
    depth: 2
    mixer: {kind: window, heads: 3, window: 4}
  - embed: merge
    dim: 96
    depth: 2
    mixer: {kind: window, heads: 6, window: 4}
"""


@pytest.mark.parametrize(
    ("old", "new", "path", "line", "match"),
    [
        pytest.param(
            "heads: 3, window: 4",
            "heads: 3, window: 0",
            "stages[0].mixer.window",
            6,
            r"stages\[0\]\.mixer\.window: .*greater than 0 \(got 0\)",
            id="window-0",
        ),
        pytest.param(
            "heads: 3, window: 4",
            "heads: 3, window: 3.5",
            "stages[0].mixer.window",
            6,
            r"expected an integer \(got 3\.5\)",
            id="window-float",
        ),
        pytest.param(
            "heads: 3, window: 4",
            "heads: 3, window: [4, 4]",
            "stages[0].mixer.window",
            6,
            r"expected an integer",
            id="window-list",
        ),
        pytest.param(
            "heads: 3, window: 4}",
            "heads: 3, window: 4, size: 4}",
            "stages[0].mixer.size",
            6,
            r"unknown key 'size' in WindowMixer \(kind 'window'\); "
            r"allowed: kind, heads, window, shift, qkv_bias$",
            id="window-unknown-key",
        ),
        pytest.param(
            "heads: 6, window: 4",
            "heads: 5, window: 4",
            "stages[1].mixer.heads",
            10,
            r"heads must divide the dim 96 \(got 5\); allowed: 1, 2, 3, 4, 6, 8, 12",
            id="heads-not-dividing",
        ),
        pytest.param(
            "heads: 3, window: 4}",
            "heads: 3, window: 4, shift: [true]}",
            "stages[0].mixer.shift",
            6,
            r"a per-block list needs exactly depth=2 items",
            id="shift-list-length",
        ),
        pytest.param(
            "heads: 3, window: 4}",
            "heads: 3, window: 4, shift: 3}",
            "stages[0].mixer.shift",
            6,
            r"expected true or false",
            id="shift-not-bool",
        ),
        pytest.param(
            "    mixer: {kind: window, heads: 6, window: 4}\n",
            "    mixer: {kind: window, heads: 6, window: 4}\n    cls_token: true\n",
            "stages[1].cls_token",
            11,
            r"window attention .* no place for class tokens",
            id="cls-token",
        ),
        pytest.param(
            "    mixer: {kind: window, heads: 6, window: 4}\n",
            "    mixer: {kind: window, heads: 6, window: 4}\n    pos_embed: relative\n",
            "stages[1].pos_embed",
            11,
            r"position embedding 'relative' does not fit mixer 'window'.*"
            r"allowed: relative_bias, none, absolute",
            id="pos-embed",
        ),
        pytest.param(
            "input: {size: 32}",
            "input: {size: 4}",
            "stages[1].embed.kind",
            7,
            r"patch merging concatenates 2x2 neighbourhoods, but the map here is only 1x1",
            id="merge-1x1",
        ),
        pytest.param(
            "input: {size: 32}",
            "input: {size: [32, 4]}",
            "stages[1].embed.kind",
            7,
            r"only 8x1",
            id="merge-one-row",
        ),
        pytest.param(
            "  - embed: merge",
            "  - embed: {kind: merge, stride: 2}",
            "stages[1].embed.stride",
            7,
            r"unknown key 'stride' in MergeEmbed \(kind 'merge'\); allowed: kind$",
            id="merge-no-keys",
        ),
    ],
)
def test_malformed_window_and_merge_specs(tmp_path, old, new, path, line, match):
    assert BASE.count(old) == 1
    file = tmp_path / "swin.yaml"
    file.write_text(BASE.replace(old, new))
    with pytest.raises(SpecError) as info:
        archsearch.load_spec(file)
    err = info.value
    assert (err.path, err.line, err.file) == (path, line, str(file))
    assert re.search(match, str(err.issues[0])), str(err.issues[0])


def test_the_base_of_the_malformed_specs_is_valid(tmp_path):
    file = tmp_path / "swin.yaml"
    file.write_text(BASE)
    model = archsearch.build(archsearch.load_spec(file))
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_a_window_larger_than_the_map_shrinks_to_it(tmp_path):
    """As timm (``_calc_window_shift``): not an error; the window takes the map and does not shift."""
    file = tmp_path / "big.yaml"
    file.write_text(BASE.replace("heads: 6, window: 4", "heads: 6, window: 9"))
    plan = normalize(archsearch.load_spec(file))
    assert plan.stages[1].out_shape.as_tuple() == (96, 4, 4)
    model = archsearch.build(plan)
    attn = model.stages[1].blocks[1].attn
    assert (attn.window, attn.shift, attn.pad) == ((4, 4), (0, 0), (0, 0))
    assert attn.relative_position_bias_table.shape == (7 * 7, 6)


def test_a_model_built_for_one_size_rejects_another():
    model = archsearch.build(_swin(64))
    message = (
        r"built for 64x64 inputs .* but got 96x96: .*stages\[0\].mixer: window lays out .* 16x16 token map"
    )
    with pytest.raises(ValueError, match=message):
        model(torch.randn(1, 3, 96, 96))


def test_cli_compile_table_names_the_swin_parts():
    from typer.testing import CliRunner

    from archsearch.cli import app

    result = CliRunner().invoke(app, ["compile", "swin-t"])
    assert result.exit_code == 0, result.output
    for text in ("merge 2x2/2", "window 7x7", "768x7x7", "28,288,354"):
        assert text in result.output
