"""Input sizes other than the built one: a clear error by default, resampled tables with
``dynamic_size: true``, and weights saved at one size loaded at another (fine-tuning 224 -> 384).

The resampled tables are checked against independent NumPy interpolations written from the
definitions (PIL's antialiased bicubic with a = -0.5, OpenCV's bicubic with a = -0.75, linear),
not against the library functions they test."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch import InputSizeError
from archsearch.cost import analytic_costs
from archsearch.ops import MHSA2d, TokenStage, WindowAttention, sinusoid_table
from archsearch.spec import spec_hash

from .helpers import randomise_

# --------------------------------------------------------------------------- independent interpolation


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _weights_plain(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` bicubic weights, ``align_corners=False``, no antialias (a = -0.75, borders
    clamped)."""
    out = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for i in range(n_out):
        src = (i + 0.5) * scale - 0.5
        base = math.floor(src)
        for k in range(base - 1, base + 3):
            out[i, min(max(k, 0), n_in - 1)] += _cubic(np.array(src - k), -0.75)
    return out


def _weights_antialias(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` antialiased bicubic weights (PIL's resampling: a = -0.5, the kernel
    stretched by the scale when shrinking, weights normalised)."""
    out = np.zeros((n_out, n_in))
    scale = n_in / n_out
    support = 2.0 * max(scale, 1.0)
    inv = 1.0 / max(scale, 1.0)
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n_in)
        w = _cubic((np.arange(lo, hi) - center + 0.5) * inv, -0.5)
        out[i, lo:hi] = w / w.sum()
    return out


def _weights_linear(n_in: int, n_out: int) -> np.ndarray:
    out = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        lo = min(math.floor(src), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        out[i, lo] += 1 - (src - lo)
        out[i, hi] += src - lo
    return out


def _resize(grid: np.ndarray, size: tuple[int, int], weights: Any) -> np.ndarray:
    """``(C, h, w)`` -> ``(C, H, W)``, separably with ``weights(n_in, n_out)``."""
    rows, cols = weights(grid.shape[1], size[0]), weights(grid.shape[2], size[1])
    return np.einsum("Hh,chw,Ww->cHW", rows, grid.astype(np.float64), cols)


def _expected_pos_embed(
    table: torch.Tensor, old: tuple[int, int], new: tuple[int, int], prefix: int
) -> torch.Tensor:
    c = table.shape[-1]
    grid = table[0, prefix:].reshape(*old, c).permute(2, 0, 1).detach().numpy()
    resized = torch.from_numpy(_resize(grid, new, _weights_antialias)).float()
    return torch.cat((table[0, :prefix].detach(), resized.permute(1, 2, 0).reshape(-1, c)))[None]


def test_the_independent_interpolations_are_pytorchs():
    """The NumPy references above are the interpolations they claim to be."""
    x = torch.randn(1, 3, 5, 7, dtype=torch.float64)
    for size, antialias in (((9, 4), True), ((3, 11), True), ((9, 13), False), ((2, 3), False)):
        ours = _resize(x[0].numpy(), size, _weights_antialias if antialias else _weights_plain)
        torch_ = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=antialias)
        np.testing.assert_allclose(ours, torch_[0].numpy(), atol=1e-12)
    line = torch.randn(1, 4, 7, dtype=torch.float64)
    for n in (3, 13):
        expected = F.interpolate(line, size=n, mode="linear", align_corners=False)[0].numpy()
        np.testing.assert_allclose(line[0].numpy() @ _weights_linear(7, n).T, expected, atol=1e-12)


# --------------------------------------------------------------------------- small specs


def _vit(
    size: int | list[int], *, pos: str = "absolute", cls: bool = True, dynamic: bool = False
) -> dict[str, Any]:
    return {
        "name": "tiny-vit",
        "input": {"size": size},
        "dynamic_size": dynamic,
        "stages": [
            {
                "embed": {"kind": "patch", "stride": 8},
                "dim": 32,
                "depth": 2,
                "mixer": {"kind": "attention", "heads": 2},
                "cls_token": cls,
                "pos_embed": pos,
            }
        ],
        "head": {"pool": "cls" if cls else "avg", "num_classes": 10},
    }


def _swin(size: int, window: int = 4, *, dynamic: bool = False) -> dict[str, Any]:
    """Two Swin stages (4x4 patches, then 2x2 merging): maps of size/4 and size/8."""
    return {
        "name": "tiny-swin",
        "input": {"size": size},
        "dynamic_size": dynamic,
        "stages": [
            {"embed": {"kind": "patch", "stride": 4, "norm": "layer"}, "dim": 16, "depth": 2,
             "mixer": {"kind": "window", "heads": 2, "window": window}},
            {"embed": "merge", "dim": 32, "depth": 2,
             "mixer": {"kind": "window", "heads": 4, "window": window}},
        ],
        "head": {"num_classes": 10},
    }  # fmt: skip


def _bot(size: int, *, pos: str = "relative", dynamic: bool = False) -> dict[str, Any]:
    """A conv stage at stride 4, then BoTNet MHSA on the size/4 map and, after the first block's
    2x2 pool, on the size/8 map."""
    return {
        "name": "tiny-bot",
        "input": {"size": size},
        "dynamic_size": dynamic,
        "stages": [
            {"embed": {"kind": "conv", "kernel": 3, "stride": 4, "norm": "batch"}, "dim": 16, "depth": 1,
             "mixer": "conv"},
            {"embed": {"kind": "block", "stride": 2}, "dim": 32, "depth": 2,
             "mixer": {"kind": "mhsa", "heads": 2}, "pos_embed": pos},
        ],
        "head": {"num_classes": 10},
    }  # fmt: skip


def _build(data: dict[str, Any]) -> archsearch.ArchNet:
    model = archsearch.build(archsearch.load_spec(data)).eval()
    randomise_(model, 0.5)  # position and bias tables far from zero, so every term shows
    return model


def _out(model: torch.nn.Module, hw: tuple[int, int]) -> torch.Tensor:
    torch.manual_seed(1)
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        return model(x)


# --------------------------------------------------------------------------- the default: a clear error


def test_a_vit_built_at_32_rejects_48_naming_both_sizes_and_the_fix(tmp_path):
    file = tmp_path / "vit.yaml"
    file.write_text(
        "input: {size: 32}\n"
        "stages:\n"
        "  - embed: {kind: patch, stride: 8}\n"
        "    dim: 32\n"
        "    depth: 1\n"
        "    mixer: {kind: attention, heads: 2}\n"
        "    cls_token: true\n"
        "    pos_embed: absolute\n"
        "head: {pool: cls, num_classes: 10}\n"
    )
    model = archsearch.build(archsearch.load_spec(file))
    with pytest.raises(InputSizeError) as info:
        _out(model, (48, 48))
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert (info.value.built, info.value.given) == ((32, 32), (48, 48))
    assert message.startswith("vit was built for 32x32 inputs (input.size) but got 48x48: ")
    assert f"{file}:8: stages[0].pos_embed: absolute is a learned table for the 4x4 token grid" in message
    assert "`dynamic_size: true`" in message and "input.size: 48" in message and "input_size=48" in message


def test_a_non_square_input_is_named_as_such():
    model = archsearch.build(archsearch.load_spec(_vit([32, 48])))
    with pytest.raises(
        InputSizeError, match=r"built for 32x48 inputs .* but got 48x32: .*input.size: \[48, 32\]"
    ):
        _out(model, (48, 32))
    assert _out(model, (32, 48)).shape == (1, 10)


def test_deit_ti_built_at_224_rejects_160_at_the_entry():
    """The size is checked before the first layer runs: no RuntimeError from deep inside."""
    model = archsearch.create_model("deit-ti").eval()
    ran: list[str] = []
    model.stem.register_forward_pre_hook(lambda *_: ran.append("stem"))
    model.stages[0].embed.register_forward_pre_hook(lambda *_: ran.append("embed"))
    with pytest.raises(
        InputSizeError, match=r"deit-ti was built for 224x224 inputs \(input.size\) but got 160x160"
    ):
        _out(model, (160, 160))
    assert ran == []


@pytest.mark.parametrize(
    ("data", "part"),
    [
        (
            _vit(32, pos="sinusoidal"),
            r"stages\[0\].pos_embed: sinusoidal is a fixed table for the 4x4 token grid",
        ),
        (
            _swin(32),
            r"stages\[0\].mixer: window lays out its windows \(and shift mask\) for the 8x8 token map",
        ),
        (_bot(32), r"stages\[1\].mixer: mhsa learns relative position logits for the offsets of its 8x8 map"),
    ],
    ids=["sinusoidal", "window", "mhsa"],
)
def test_every_size_dependent_part_is_named(data, part):
    model = archsearch.build(archsearch.load_spec(data))
    with pytest.raises(
        InputSizeError, match=rf"built for 32x32 inputs .* but got 48x48: .*{part} of 32x32 inputs"
    ):
        _out(model, (48, 48))


# --------------------------------------------------------------------------- models that take any size


CONV_ONLY = {
    "resnet": {
        "input": {"size": 32},
        "stem": {"kind": "resnet", "channels": 8},
        "stages": [{"embed": {"kind": "block", "stride": 1}, "dim": 16, "depth": 1, "mixer": "conv"},
                   {"embed": {"kind": "block", "stride": 2}, "dim": 32, "depth": 1, "mixer": "conv"}],
    },
    "convnext": {
        "input": {"size": 32},
        "stages": [{"embed": {"kind": "patch", "stride": 4, "norm": "layer"}, "dim": 16, "depth": 1,
                    "mixer": "dwconv"}],
    },
    "cvt": {
        "input": {"size": 32},
        "stages": [{"embed": {"kind": "conv", "kernel": 3, "stride": 4}, "dim": 16, "depth": 1,
                    "mixer": {"kind": "attention", "heads": 2, "qkv": "dw_bn", "kv_stride": 2}}],
    },
    "mhsa-without-relative": _bot(32, pos="none"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CONV_ONLY))
def test_models_without_size_dependent_parts_take_any_size(name):
    model = archsearch.build(archsearch.load_spec(CONV_ONLY[name])).eval()
    assert model.fixed_size is None and not model.dynamic_size
    for hw in ((32, 32), (48, 48), (40, 56), (64, 24)):
        assert _out(model, hw).shape == (1, model.num_classes)


# --------------------------------------------------------------------------- dynamic_size: true


def test_dynamic_size_is_a_spec_field_outside_the_hash_and_the_costs():
    fixed, dynamic = archsearch.load_spec(_vit(32)), archsearch.load_spec(_vit(32, dynamic=True))
    assert not archsearch.build(fixed).dynamic_size and archsearch.build(dynamic).dynamic_size
    assert spec_hash(fixed) == spec_hash(dynamic)
    assert analytic_costs(archsearch.normalize(fixed)) == analytic_costs(archsearch.normalize(dynamic))
    with pytest.raises(archsearch.SpecError, match="dynamic_size"):
        archsearch.load_spec({**_vit(32), "dynamic_size": "yes"})
    assert archsearch.load_spec(_vit(32), dynamic_size=True).dynamic_size  # create_model's override too


@pytest.mark.parametrize(("built", "given"), [(32, (48, 48)), (48, (32, 32)), (32, (48, 64))])
@pytest.mark.parametrize("cls", [True, False])
def test_dynamic_vit_resamples_its_table_as_a_model_built_at_that_size(built, given, cls):
    """Up (32 -> 48), down (48 -> 32, antialiased) and to a non-square grid; class token kept."""
    model = _build(_vit(built, cls=cls, dynamic=True))
    other = archsearch.build(archsearch.load_spec(_vit(list(given), cls=cls))).eval()
    archsearch.load_weights(other, model.state_dict())
    grid = (built // 8, built // 8)
    expected = _expected_pos_embed(model.stages[0].pos_embed, grid, (given[0] // 8, given[1] // 8), int(cls))
    torch.testing.assert_close(other.stages[0].pos_embed, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(_out(model, given), _out(other, given), rtol=0, atol=1e-5)
    fixed = archsearch.build(archsearch.load_spec(_vit(built, cls=cls))).eval()
    fixed.load_state_dict(model.state_dict())  # at the built size nothing changes
    torch.testing.assert_close(_out(model, (built, built)), _out(fixed, (built, built)), rtol=0, atol=0)


def test_dynamic_sinusoidal_table_is_recomputed_for_the_new_grid():
    model = _build(_vit(32, pos="sinusoidal", dynamic=True))
    other = archsearch.build(archsearch.load_spec(_vit(48, pos="sinusoidal"))).eval()
    archsearch.load_weights(other, model.state_dict())
    torch.testing.assert_close(other.stages[0].pos_embed, sinusoid_table(1 + 36, 32))
    torch.testing.assert_close(_out(model, (48, 48)), _out(other, (48, 48)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("given", [(48, 48), (40, 56), (24, 24)])
def test_dynamic_swin_lays_its_windows_out_on_the_new_map(given):
    """Built at 32 (8x8 and 4x4 maps, window 4; the second stage, no larger than the window, is not
    shifted), called where the first stage is padded (40 -> 10x10; 56 -> 14) or the window exceeds
    the map (24 -> 6x6 and 3x3): each block keeps its window, shift and table (as timm's
    ``dynamic_mask``) and lays them out as a block built for that map with them does."""
    model = _build(_swin(32, dynamic=True))
    attn = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert [(a.window, a.shift) for a in attn] == [((4, 4), (0, 0)), ((4, 4), (2, 2))] + [
        ((4, 4), (0, 0))
    ] * 2
    out = _out(model, given)
    assert out.shape == (1, 10) and torch.isfinite(out).all()
    first = (given[0] // 4, given[1] // 4)
    for a, hw in zip(attn, [first] * 2 + [(-(-first[0] // 2), -(-first[1] // 2))] * 2, strict=True):
        ref = WindowAttention(a.qkv.in_features, a.heads, hw, a.window, a.shift).eval()
        ref.load_state_dict(a.state_dict())
        x = torch.randn(2, hw[0] * hw[1], a.qkv.in_features)
        with torch.no_grad():
            torch.testing.assert_close(a(x, hw), ref(x, hw), rtol=0, atol=1e-5)
            torch.testing.assert_close(a(x, hw), ref(x, hw), rtol=0, atol=1e-5)  # from the layout cache


def test_dynamic_swin_equals_a_swin_built_at_the_new_size_when_the_geometry_agrees():
    """At 64 (16x16, 8x8) and at 96 (24x24, 12x12) every block has window 4 and shift 2 on odd
    blocks: the dynamic model must give what the model built at 96 gives with the same weights."""
    model = _build(_swin(64, dynamic=True))
    other = archsearch.build(archsearch.load_spec(_swin(96))).eval()
    archsearch.load_weights(other, model.state_dict())
    torch.testing.assert_close(_out(model, (96, 96)), _out(other, (96, 96)), rtol=0, atol=1e-5)
    torch.testing.assert_close(_out(model, (80, 80)), _out(_swin_at(model, 80), (80, 80)), rtol=0, atol=1e-5)


def _swin_at(model: archsearch.ArchNet, size: int) -> archsearch.ArchNet:
    other = archsearch.build(archsearch.load_spec(_swin(size))).eval()
    archsearch.load_weights(other, model.state_dict())
    return other


def test_dynamic_botnet_resizes_its_relative_embeddings_linearly():
    model = _build(_bot(32, dynamic=True))
    other = archsearch.build(archsearch.load_spec(_bot(48))).eval()
    archsearch.load_weights(other, model.state_dict())
    [mhsa, *_] = [m for m in model.modules() if isinstance(m, MHSA2d)]
    [resized, *_] = [m for m in other.modules() if isinstance(m, MHSA2d)]
    assert (mhsa.size, resized.size) == ((8, 8), (12, 12))
    expected = _weights_linear(15, 23) @ mhsa.rel_h.detach().double().numpy()
    np.testing.assert_allclose(resized.rel_h.detach().numpy(), expected, atol=1e-6)
    torch.testing.assert_close(_out(model, (48, 48)), _out(other, (48, 48)), rtol=0, atol=1e-5)
    assert _out(model, (40, 64)).shape == (1, 10)


def test_set_dynamic_size_switches_a_built_model_and_trains_its_table():
    model = archsearch.build(archsearch.load_spec(_vit(32)))
    with pytest.raises(InputSizeError):
        model(torch.randn(1, 3, 48, 48))
    model.set_dynamic_size(True)
    assert all(m.dynamic_size for m in model.modules() if isinstance(m, TokenStage))
    model(torch.randn(2, 3, 48, 48)).sum().backward()
    grad = model.stages[0].pos_embed.grad
    assert grad is not None and grad[0, 1:].abs().sum() > 0  # the grid part trains through the resampling
    model.set_dynamic_size(False)
    with pytest.raises(InputSizeError):
        model(torch.randn(1, 3, 48, 48))


# --------------------------------------------------------------------------- weights saved at another size


def test_a_table_for_another_architecture_is_refused():
    model = archsearch.build(archsearch.load_spec(_vit(48)))
    state = archsearch.build(archsearch.load_spec(_vit(32))).state_dict()
    state["stages.0.pos_embed"] = torch.zeros(1, 17, 16)
    with pytest.raises(
        ValueError, match=r"stages.0.pos_embed: the weights hold a \(1, 17, 16\) table where the model"
    ):
        archsearch.load_weights(model, state)


def test_a_non_square_checkpoint_needs_its_input_size():
    saved = _build(_vit([32, 48]))
    model = archsearch.build(archsearch.load_spec(_vit(64))).eval()
    with pytest.raises(ValueError, match="not a square grid; pass input_size="):
        archsearch.load_weights(model, saved.state_dict())
    archsearch.load_weights(model, saved.state_dict(), input_size=(32, 48))
    expected = _expected_pos_embed(saved.stages[0].pos_embed, (4, 6), (8, 8), 1)
    torch.testing.assert_close(model.stages[0].pos_embed, expected, rtol=0, atol=1e-5)
    # the same number of positions on the transposed grid: only input_size tells them apart
    transposed = archsearch.build(archsearch.load_spec(_vit([48, 32]))).eval()
    archsearch.load_weights(transposed, saved.state_dict(), input_size=[32, 48])
    expected = _expected_pos_embed(saved.stages[0].pos_embed, (4, 6), (6, 4), 1)
    torch.testing.assert_close(transposed.stages[0].pos_embed, expected, rtol=0, atol=1e-5)


def test_a_swin_checkpoint_loads_at_a_larger_window():
    """Window 4 at 32 px -> window 8 at 64 px: each 7x7 table resized to 15x15 (bicubic, no antialias)."""
    saved = _build(_swin(32))
    model = archsearch.build(archsearch.load_spec(_swin(64, window=8))).eval()
    archsearch.load_weights(model, saved.state_dict())
    for old, new in zip(
        (m for m in saved.modules() if isinstance(m, WindowAttention)),
        (m for m in model.modules() if isinstance(m, WindowAttention)),
        strict=True,
    ):
        assert (old.window, new.window) == ((4, 4), (8, 8))
        table = old.relative_position_bias_table.detach().T.reshape(-1, 7, 7).numpy()
        expected = _resize(table, (15, 15), _weights_plain).reshape(old.heads, -1).T
        np.testing.assert_allclose(new.relative_position_bias_table.detach().numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_deit_ti_saved_at_224_loads_at_384(tmp_path):
    saved = archsearch.create_model("deit-ti")
    randomise_(saved.stages[0], 0.5)
    path = tmp_path / "deit-ti-224.pt"
    torch.save({"state_dict": saved.state_dict()}, path)
    model = archsearch.create_model("deit-ti", input_size=384)
    with pytest.raises(RuntimeError, match=r"size mismatch for stages\.0\.pos_embed"):
        model.load_state_dict(saved.state_dict())
    keys = archsearch.load_weights(model, path)
    assert (keys.missing_keys, keys.unexpected_keys) == ([], [])
    expected = _expected_pos_embed(saved.stages[0].pos_embed, (14, 14), (24, 24), 1)
    torch.testing.assert_close(model.stages[0].pos_embed, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(model.stages[0].cls_token, saved.stages[0].cls_token)


@pytest.mark.slow
def test_deit_ti_dynamic_at_160_equals_deit_ti_built_at_160():
    data = archsearch.load_spec("deit-ti").model_dump(exclude_none=True)
    model = archsearch.build(archsearch.load_spec({**data, "dynamic_size": True})).eval()
    randomise_(model.stages[0], 0.05, add=True)
    other = archsearch.create_model("deit-ti", input_size=160).eval()
    archsearch.load_weights(other, model.state_dict())
    torch.testing.assert_close(_out(model, (160, 160)), _out(other, (160, 160)), rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("window", [7, 12])
def test_swin_t_saved_at_224_loads_at_384(window):
    saved = archsearch.create_model("swin-t")
    data = archsearch.load_spec("swin-t", input_size=384).model_dump(exclude_none=True)
    for stage in data["stages"]:
        stage["mixer"]["window"] = window
    model = archsearch.build(archsearch.load_spec(data))
    keys = archsearch.load_weights(model, saved.state_dict())
    assert (keys.missing_keys, keys.unexpected_keys) == ([], [])
    key = "stages.2.blocks.1.attn.relative_position_bias_table"
    old, new = saved.state_dict()[key], model.state_dict()[key]
    assert new.shape == ((2 * window - 1) ** 2, 12)
    expected = _resize(old.T.reshape(12, 13, 13).numpy(), (2 * window - 1,) * 2, _weights_plain)
    np.testing.assert_allclose(new.numpy(), expected.reshape(12, -1).T, atol=1e-5)


# --------------------------------------------------------------------------- the zoo

SIZE_DEPENDENT = {
    "bot-50",
    "deit-s",
    "deit-ti",
    "swin-t",
    "t2t-vit-t-14",
    "vit-b16",
    "botnet-26t",
    "deit-b-distilled",
    "twins-svt-s",
    "convit-ti",
    "vit-b16-r50",
    "transformer-ls-m",  # ViL full attention's relative position bias tables (stages 3-4)
    "mvitv2-t",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", archsearch.zoo_names())
def test_every_zoo_model_takes_another_size_or_says_why(name):
    """At 96x128: either it runs (convolutional and global-attention models), or it raises the
    InputSizeError at the entry, never a RuntimeError; with dynamic_size on, every one runs."""
    model = archsearch.create_model(name, num_classes=10).eval()
    given = (96, 128)
    try:
        out = _out(model, given)
    except InputSizeError as exc:
        assert name in SIZE_DEPENDENT and model.fixed_size is not None
        assert exc.given == given and exc.built == model.input_size
    else:
        assert name not in SIZE_DEPENDENT and model.fixed_size is None
        assert out.shape == (1, 10)
    model.set_dynamic_size(True)
    out = _out(model, given)
    assert out.shape == (1, 10) and torch.isfinite(out).all()
