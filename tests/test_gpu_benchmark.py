"""benchmarks/gpu.py --quick: every part of the GPU benchmark runs on the CPU for seconds and writes
RESULTS.md and its JSON into the folder given by ``--out`` (no figure here is a measurement)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """The benchmark's ``main`` in this process (it sets torch to one thread on the CPU, and the
    conftest sets the test threads again for the next test); its ``sys.path`` additions are undone."""
    monkeypatch.setattr(sys, "path", [*sys.path])
    monkeypatch.chdir(tmp_path)
    main = runpy.run_path(str(ROOT / "benchmarks" / "gpu.py"), run_name="gpu_benchmark")["main"]
    return main(["--out", str(tmp_path), *args])


def test_gpu_benchmark_quick_runs_every_part(tmp_path, monkeypatch):
    assert _run(tmp_path, monkeypatch, "--quick", "--commit", "abc123") == 0
    results = json.loads((tmp_path / "gpu_results.json").read_text())
    meta = results["meta"]
    assert meta["quick"] and meta["commit"] == "abc123" and meta["device_info"]["device"] == "cpu"
    models = ["deit-s", "cvt-13", "swin-t", "resnet-50", "convnext-t"]
    assert meta["models"] == models
    for part in (
        "peak",
        "latency",
        "inference",
        "train_eager",
        "stream",
        "train_compiled",
        "supernet",
        "search",
    ):
        assert results[part]["status"] == "ok", (part, results[part])
    assert results["peak"]["tflops"] > 0
    for name in models:
        eager = results["train_eager"][name]
        assert eager["status"] == "ok", eager
        # MFU is 3 x 2 x MACs x images/s over the peak measured in the same run.
        flops = eager["forward_gflops"] * 1e9
        assert abs(eager["mfu"] - 3 * flops * eager["images_per_s"] / results["peak"]["flops"]) < 1e-9
        assert eager["channels_last"] == (name in ("resnet-50", "convnext-t"))
        assert results["inference"][name]["images_per_s"] > 0
    assert results["train_compiled"]["deit-s"]["status"] == "ok"
    assert "profile" in results["train_compiled"]["deit-s"]  # quick MFU is meaningless: the profile path runs
    if not results["inference"]["timm"]:
        assert "timm is not installed" in results["inference"]["note"]
    assert results["latency"]["float32"]["batch"] == 2 and results["latency"]["float32"]["runs"] == 4
    assert results["search"]["trials_evaluated"] >= 1 and results["search"]["trials_per_hour"] > 0
    assert results["supernet"]["images_per_s"] > 0
    stream = results["stream"]
    assert (
        stream["workers"] == 2
        and stream["batch_shape"] == [2, 3, 32, 32]
        and stream["batch_dtype"] == "torch.uint8"
        and stream["batch_device"] == "cpu"
    )
    text = (tmp_path / "RESULTS.md").read_text()
    assert "commit abc123" in text and "quick mode" in text and "torch " in text
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7."):
        assert heading in text


def test_gpu_benchmark_out_of_budget_skips_every_part_and_still_reports(tmp_path, monkeypatch):
    """With no time left every part is recorded as skipped (what a run near its limit keeps)."""
    parts = "peak,train_eager,search"
    assert _run(tmp_path, monkeypatch, "--device", "cpu", "--budget-s", "0", "--parts", parts) == 0
    results = json.loads((tmp_path / "gpu_results.json").read_text())
    assert [k for k in results if k != "meta"] == ["peak", "train_eager", "search"]
    assert all(results[k]["status"] == "skipped" for k in ("peak", "train_eager", "search"))
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.count("skipped: out of time") == 3 and "## 4." in text and "not run" in text
