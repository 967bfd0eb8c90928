"""`archsearch export` and `archsearch.export`: ONNX, TorchScript and safetensors round trips on three
zoo families, the self-check's failure, bad weights and formats as one error line; `list_models`."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import archsearch
from archsearch.cli import app
from archsearch.deploy import _export as export_module

onnxruntime = pytest.importorskip("onnxruntime")
safetensors_torch = pytest.importorskip("safetensors.torch")

#: one zoo model per family, at a small input so that each export takes seconds
MODELS = {"attention": ("deit-ti", 32), "window": ("swin-t", 32), "conv": ("resnet-50", 32)}
runner = CliRunner()


@pytest.fixture(scope="module")
def models() -> dict[str, archsearch.ArchNet]:
    torch.manual_seed(0)
    return {
        family: archsearch.create_model(name, input_size=size, num_classes=10).eval()
        for family, (name, size) in MODELS.items()
    }


def _logits(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model(x).numpy()


@pytest.mark.parametrize("family", list(MODELS))
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_round_trip(models, family, fmt, tmp_path):
    """Each format reproduces PyTorch's logits; checked here again, apart from the self-check, on a
    batch the export never saw."""
    model = models[family]
    name, size = MODELS[family]
    result = archsearch.export(model, fmt, tmp_path)
    assert result.path == tmp_path / (name + export_module.SUFFIXES[fmt]) and result.path.is_file()
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert result.batches == ((1,) if fmt == "safetensors" else (1, 2))
    assert result.spec_hash == archsearch.spec.spec_hash(model.plan.spec)
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(7))
    expected = _logits(model, x)
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["image"]
        got = session.run(["logits"], {"image": x.numpy()})[0]
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
        assert meta["archsearch.spec_hash"] == result.spec_hash
    elif fmt == "torchscript":
        extra = {"archsearch.json": ""}
        loaded = torch.jit.load(str(result.path), _extra_files=extra)
        assert json.loads(extra["archsearch.json"])["name"] == name
        got = _logits(loaded, x)
    else:
        from safetensors import safe_open

        with safe_open(str(result.path), framework="pt") as f:
            spec = json.loads(f.metadata()["archsearch.spec"])
        fresh = archsearch.build(archsearch.load_spec(spec)).eval()
        safetensors_torch.load_model(fresh, str(result.path), strict=True)
        got = _logits(fresh, x)
        assert np.array_equal(got, expected)  # the same weights in the same build: bit for bit
    assert got.shape == (3, 10)
    assert np.abs(got - expected).max() <= 1e-4


def test_export_from_a_spec_with_weights_and_overrides(tmp_path):
    """A zoo name with overrides, weights from a torch.save'd checkpoint (nested, DDP-prefixed)."""
    model = archsearch.create_model("deit-ti", input_size=32, num_classes=10)
    with torch.no_grad():
        model.head.fc.bias.fill_(0.5)  # weights that differ from the seeded initialisation
    state = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(state, tmp_path / "w.pt")
    result = archsearch.export(
        "deit-ti", "torchscript", tmp_path / "m.pt", weights=tmp_path / "w.pt", input_size=32, num_classes=10
    )
    loaded = torch.jit.load(str(result.path))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(_tensor(loaded, x), _tensor(model.eval(), x))
    assert result.max_abs_diff == 0.0 and result.num_classes == 10


def _tensor(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


def test_self_check_failure_keeps_the_file_and_names_the_difference(tmp_path):
    """The PyTorch side is shifted by 1 after the file is written: the check must see it."""
    model = archsearch.create_model("deit-ti", input_size=32, num_classes=10)

    def shift_after_writing(step: str) -> None:
        if step.startswith("checking"):
            model.register_forward_hook(lambda m, args, y: y + 1.0)

    with pytest.raises(archsearch.ExportError, match=r"max abs diff 1 > tolerance 0\.0001") as info:
        archsearch.export(model, "onnx", tmp_path, progress=shift_after_writing)
    assert info.value.max_abs_diff == pytest.approx(1.0, abs=1e-4)
    assert (tmp_path / "deit-ti.onnx").is_file()
    assert "\n" not in str(info.value)


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_exports_and_checks(tmp_path):
    out = tmp_path / "deit.safetensors"
    result = runner.invoke(
        app, ["export", "deit-ti", "-r", "32", "--num-classes", "10", "-f", "safetensors", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output and "max abs diff 0 " in result.output
    args = ["export", "deit-ti", "-r", "32", "--num-classes", "10", "--weights", str(out)]
    result = runner.invoke(app, [*args, "-o", f"{tmp_path}/x/"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "deit-ti.onnx").is_file()
    assert "onnxruntime" in result.output and "at batch 1 and 2: max abs diff" in result.output
    args = ["export", "deit-ti", "-r", "32", "-f", "torchscript", "-o", str(tmp_path), "--json"]
    data = json.loads(runner.invoke(app, args).stdout)
    assert data["format"] == "torchscript" and data["max_abs_diff"] == 0.0 and data["batches"] == [1, 2]


def test_cli_errors_are_one_line(tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all\n")
    line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-r", "32", "-w", str(garbage)]))
    assert str(garbage) in line and "not a PyTorch checkpoint or safetensors file" in line
    for name, content in [("short.pt", b"abc"), ("exp.yaml", b"name: x\ntrials: 3\n")]:
        bad = tmp_path / name  # bytes that make torch's unpickler raise IndexError, not UnpicklingError
        bad.write_bytes(content)
        line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-r", "32", "-w", str(bad)]))
        assert str(bad) in line and "not a PyTorch checkpoint or safetensors file" in line
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-r", "32", "-w", str(empty)]))
    assert str(empty) in line and "not a valid safetensors file" in line
    line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-w", str(tmp_path / "none.pt")]))
    assert "none.pt: no such file" in line
    line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-f", "tflite"]))
    assert "format 'tflite' is not supported; allowed: onnx, torchscript, safetensors" in line
    # weights trained for 10 classes into the 1000-class model: named, with the hint
    ten = tmp_path / "ten.pt"
    torch.save(archsearch.create_model("deit-ti", input_size=32, num_classes=10).state_dict(), ten)
    line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-r", "32", "-w", str(ten)]))
    assert "the weights do not fit the model deit-ti" in line and "head.fc.weight: file [10, 192]" in line
    assert "pass --num-classes 10" in line
    other = tmp_path / "other.pt"
    torch.save(archsearch.create_model("resnet-50", input_size=32).state_dict(), other)
    line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-r", "32", "-w", str(other)]))
    assert re.search(r"\d+ missing \(stages\.0\..*\d+ more\); \d+ unexpected \(", line), line
    # a self-check over the tolerance: exit 2, one line with the difference
    monkeypatch.setattr(export_module, "check_file", lambda *a: ("onnxruntime", (1, 2), 0.25))
    line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-r", "32", "-o", str(tmp_path)]))
    assert "onnxruntime does not reproduce PyTorch: max abs diff 0.25 > tolerance 0.0001" in line


@pytest.mark.parametrize(
    ("missing", "args", "why"),
    [
        ("onnx", [], "(torch.onnx writes ONNX files with it)"),
        ("onnxruntime", [], "(it runs the ONNX file back; or skip that check: --no-check)"),
        ("onnxscript", ["--onnx-exporter", "dynamo"], "(--onnx-exporter dynamo needs it)"),
        ("safetensors", ["-f", "safetensors"], "(--format safetensors writes the file with it)"),
        ("safetensors", ["-f", "torchscript", "-w", "{weights}"], "(it reads {weights})"),
    ],
)
def test_a_missing_export_package_is_named_first(tmp_path, monkeypatch, missing, args, why):
    """Without an optional package the error leads with it and the install line (without onnx it
    read 'torch.onnx cannot export deit-ti: ...', as if the model were at fault), before anything
    is built or written."""
    weights = tmp_path / "w.safetensors"
    safetensors_torch.save_file({"x": torch.zeros(1)}, str(weights))
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: importing it fails
    args = [a.format(weights=weights) for a in args]
    out = tmp_path / "out"
    line = _one_error_line(runner.invoke(app, ["export", "deit-ti", "-r", "32", *args, "-o", f"{out}/"]))
    assert line == f"error: {missing} is not installed: pip install 'archsearch[export]' " + why.format(
        weights=weights
    )
    assert not out.exists() or not any(out.iterdir())


def test_load_weights_documents_what_it_raises(tmp_path):
    """``load_weights`` on a missing file, a folder or bytes that are no checkpoint raises
    ExportError naming the path, and its docstring says so (it said only 'a file that cannot be
    read', and nothing about a missing one)."""
    model = archsearch.create_model("deit-ti", input_size=32)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint\n")
    cases = {"no such file": tmp_path / "none.pt", "a folder": tmp_path, "not a PyTorch checkpoint": garbage}
    for reason, source in cases.items():
        with pytest.raises(archsearch.errors.ExportError) as caught:
            archsearch.load_weights(model, source)
        assert str(caught.value).startswith(f"{source}: {reason}")
    doc = " ".join((archsearch.load_weights.__doc__ or "").split())
    raises = doc.split("Raises:")[1]
    assert "ExportError" in raises and "``PATH: no such file``" in raises and "a folder" in raises
    assert "neither a safetensors file nor one ``torch.save`` wrote" in raises


def test_list_models_matches_like_timm():
    names = archsearch.zoo_names()
    assert archsearch.list_models() == names == sorted(names)
    assert archsearch.list_models("cvt*") == ["cvt-13", "cvt-21"]
    assert archsearch.list_models("CVT-1?") == ["cvt-13"]  # case does not matter
    assert archsearch.list_models(["deit*", "swin*"]) == ["deit-b-distilled", "deit-s", "deit-ti", "swin-t"]
    vits = ["t2t-vit-t-14", "vit-b16", "vit-b16-r50"]
    assert archsearch.list_models("*vit*", exclude=["mobile*", "con*", "mvit*"]) == vits
    assert archsearch.list_models("nothing*") == []


@pytest.mark.slow
def test_dynamo_onnx_exporter(tmp_path):
    """The torch.export-based exporter (needs onnxscript) writes a file onnxruntime reproduces too."""
    pytest.importorskip("onnxscript")
    kwargs = {"onnx_exporter": "dynamo", "input_size": 32, "num_classes": 10}
    result = archsearch.export("deit-ti", "onnx", tmp_path, **kwargs)
    assert "torch.export-based" in result.exporter
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4 and result.batches == (1, 2)


def test_save_weights_is_atomic_readable_and_keeps_views_apart(tmp_path):
    """A state dict whose tensors view one storage (a one-shot member's slices of shared supernet
    tensors) is written whole: safetensors alone refuses shared memory. The file gets the usual
    mode (safetensors writes 0600) and no ``.part`` file is left behind."""
    import os

    from archsearch.deploy import read_state_dict, save_weights

    base = torch.arange(12.0)
    state = {"a.weight": base[:6], "b.weight": base[6:], "c.bias": torch.ones(3)}
    path = save_weights(state, tmp_path / "w.safetensors")
    assert path == tmp_path / "w.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
    back = read_state_dict(path)
    assert set(back) == set(state)
    for key, tensor in state.items():
        assert torch.equal(back[key], tensor)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(archsearch.errors.ExportError, match="metadata needs the safetensors format"):
        save_weights(state, tmp_path / "w.pt", metadata={"k": "v"})
    model = torch.nn.Linear(3, 2)
    pt = save_weights(model, tmp_path / "m.pt")
    assert set(read_state_dict(pt)) == {"weight", "bias"}


def _dynamic_spec(mixer: dict) -> dict:
    return {
        "input": {"size": 32},
        "dynamic_size": True,
        "stages": [{"embed": {"kind": "patch", "stride": 4}, "dim": 16, "depth": 1, "mixer": mixer}],
        "head": {"num_classes": 10},
    }


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_dynamic_size_is_kept_or_refused(fmt, tmp_path):
    """dynamic_size: true is checked at a second size. A conv model's file takes it (ONNX with free
    height and width axes); window attention, whose layout the exporters freeze at the traced size,
    is refused in one line and no file is left that would fail at another size."""
    result = archsearch.export(_dynamic_spec({"kind": "conv"}), fmt, tmp_path / f"conv.{fmt}")
    assert result.other_size == (36, 36) and result.max_abs_diff is not None
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        assert session.run(None, {"image": np.zeros((2, 3, 48, 40), np.float32)})[0].shape == (2, 10)
    spec = tmp_path / "dyn.yaml"
    spec.write_text(json.dumps(_dynamic_spec({"kind": "window", "heads": 2, "window": 4})))
    line = _one_error_line(runner.invoke(app, ["export", str(spec), "-f", fmt, "-o", f"{tmp_path}/w/"]))
    assert "dynamic_size:" in line and "on a 36x36 input" in line and "take only 32x32 inputs" in line
    assert not list((tmp_path / "w").iterdir())
    fixed = _dynamic_spec({"kind": "window", "heads": 2, "window": 4}) | {"dynamic_size": False}
    assert archsearch.export(fixed, fmt, tmp_path / "w" / "fixed").other_size is None


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_second_size_check_runs_the_file_already_loaded(fmt, tmp_path, monkeypatch):
    """The dynamic_size check at a second size runs the session / module the first check loaded:
    the written file is read once (it was loaded again for the second size)."""
    from archsearch.deploy import _formats

    name = "_onnx_runner" if fmt == "onnx" else "_torchscript_runner"
    original = getattr(_formats, name)
    loads: list = []

    def counting(target):
        loads.append(target)
        return original(target)

    monkeypatch.setattr(_formats, name, counting)
    result = archsearch.export(_dynamic_spec({"kind": "conv"}), fmt, tmp_path / f"conv.{fmt}")
    assert result.other_size == (36, 36) and result.max_abs_diff is not None
    assert loads == [result.path]
