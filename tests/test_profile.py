"""Latency, memory, the latency cache, spec hashes and `archsearch profile`."""

from __future__ import annotations

import json
import re
import statistics
from unittest import mock

import pytest
import torch
from typer.testing import CliRunner

import archsearch
from archsearch.cli import app
from archsearch.cost import (
    LatencyCache,
    analytic_costs,
    cuda_peak_memory,
    measure_latency,
    profile,
    saved_activation_bytes,
    time_call,
)
from archsearch.cost import _profile as profile_module
from archsearch.spec import spec_hash

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TINY = "deit-ti"


def tiny_model():
    return archsearch.create_model(TINY, input_size=32, num_classes=10)


def test_latency_statistics_describe_the_samples():
    before = torch.get_num_threads()
    result = measure_latency(tiny_model(), (2, 3, 32, 32), warmup=2, runs=9, threads=1)
    assert torch.get_num_threads() == before  # the fixed thread count is restored
    assert result.threads == 1 and result.batch == 2 and len(result.samples_ms) == 9
    assert result.median_ms == pytest.approx(statistics.median(result.samples_ms))
    q1, _, q3 = statistics.quantiles(result.samples_ms, n=4, method="inclusive")
    assert result.iqr_ms == pytest.approx(q3 - q1)
    assert result.cv == pytest.approx(
        statistics.pstdev(result.samples_ms) / statistics.fmean(result.samples_ms)
    )
    assert result.min_ms <= result.median_ms and result.device.startswith("cpu")


def test_latency_rejects_bad_arguments():
    with pytest.raises(ValueError, match="runs >= 4"):
        measure_latency(tiny_model(), (1, 3, 32, 32), runs=3)
    with pytest.raises(ValueError, match="unknown dtype"):
        measure_latency(tiny_model(), (1, 3, 32, 32), dtype="float8")
    with pytest.raises(ValueError, match="cuda_graph times a CUDA graph's replay; the device is 'cpu'"):
        measure_latency(tiny_model(), (1, 3, 32, 32), cuda_graph=True)


def test_graph_timings_are_cached_apart_from_eager_ones():
    eager = LatencyCache.key("abc", "cuda (H200)", "float32", 64, 1)
    assert LatencyCache.key("abc", "cuda (H200)", "float32", 64, 1, cuda_graph=True) != eager
    assert eager == "abc|cuda (H200)|float32|b64|t1"  # keys written before graphs still hit


def test_spec_hash_ignores_names_and_spelling_but_not_architecture():
    base = archsearch.load_spec("cvt-13")
    data = base.model_dump(exclude_none=True)
    stages = [dict(s, depth=d) for s, d in zip(data["stages"], data.pop("depths"), strict=True)]
    respelled = archsearch.load_spec({**data, "name": "other", "stages": stages})
    assert spec_hash(respelled) == spec_hash(base)
    stages[1]["mixer"] = dict(stages[1]["mixer"], kv_stride=[1, 2])
    assert spec_hash(archsearch.load_spec({**data, "stages": stages})) != spec_hash(base)
    assert spec_hash(archsearch.load_spec("cvt-13", input_size=160)) != spec_hash(base)


def test_profile_caches_latency_by_spec_device_dtype_batch_and_threads(tmp_path):
    cache = LatencyCache(tmp_path / "latency.json")
    spec = archsearch.load_spec(TINY, input_size=32)
    with mock.patch.object(
        profile_module, "measure_latency", wraps=profile_module.measure_latency
    ) as measured:
        first = profile(spec, runs=4, warmup=1, threads=1, cache=cache, memory=False)
        again = profile(spec, runs=4, warmup=1, threads=1, cache=cache, memory=False)
        assert measured.call_count == 1
        assert again.latency == first.latency
        profile(spec, batch=2, runs=4, warmup=1, threads=1, cache=cache, memory=False)
        assert measured.call_count == 2
    (tmp_path / "latency.json").write_text("{not json")  # a damaged cache is measured again, not fatal
    assert profile(spec, runs=4, warmup=1, threads=1, cache=cache, memory=False).latency is not None


def test_profile_agrees_with_analytic_costs_per_stage():
    spec = archsearch.load_spec("bot-50", input_size=64)
    result = profile(spec, latency=False)
    analytic = analytic_costs(archsearch.normalize(spec))
    assert result.params == result.params_analytic == analytic.params
    assert result.macs == result.macs_analytic == analytic.macs
    assert [s["macs"] for s in result.stages] == [s["macs_analytic"] for s in result.stages]
    assert [s["params"] for s in result.stages] == [s["params_analytic"] for s in result.stages]


def test_saved_activations_grow_with_the_batch():
    model = tiny_model()
    one, two = saved_activation_bytes(model, (1, 3, 32, 32)), saved_activation_bytes(model, (2, 3, 32, 32))
    assert one > 0
    assert 1.8 < two / one <= 2.05  # activations scale with the batch; parameters are excluded
    assert model.training is True  # mode restored (create_model returns a training-mode module)


#: a bottleneck stage whose map is 1x1 at 2 pixels: at batch 1 its BatchNorms see one value per channel
ONE_PIXEL = {
    "input": {"size": 2},
    "stages": [
        {"embed": {"kind": "conv", "stride": 2, "norm": "batch"}, "dim": 8, "depth": 1, "mixer": "conv"}
    ],
    "head": {"num_classes": 10},
}


def test_saved_activations_at_one_value_per_channel(tmp_path):
    # torch refuses to train a BatchNorm on one value per channel; profile used to end in its
    # traceback (archsearch profile resnet-50 --resolution 32); the measurement runs them on their
    # running statistics instead, and every mode is restored
    model = archsearch.build(ONE_PIXEL)
    saved = saved_activation_bytes(model, (1, 3, 2, 2))
    assert saved > 0 and model.training and all(m.training for m in model.modules())
    path = tmp_path / "one-pixel.yaml"
    path.write_text(json.dumps(ONE_PIXEL))
    result = CliRunner().invoke(app, ["profile", str(path), "--no-latency"])
    assert result.exit_code == 0, result.output
    assert "saved for backward (measured)" in result.output and "Traceback" not in result.output


def test_cli_profile_json():
    result = CliRunner().invoke(
        app,
        [
            "profile",
            TINY,
            "-r",
            "64",
            "--runs",
            "4",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--no-cache",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in (
        "params",
        "trainable_params",
        "macs",
        "macs_analytic",
        "params_analytic",
        "latency_ms",
        "latency_iqr_ms",
    ):
        assert key in data
    model = archsearch.create_model(TINY, input_size=64)
    assert data["params"] == data["params_analytic"] == sum(p.numel() for p in model.parameters())
    assert data["macs"] == data["macs_analytic"] > 0
    assert data["latency_ms"] > 0 and data["latency_iqr_ms"] >= 0


def test_cli_profile_table_and_bad_device():
    runner = CliRunner()
    result = runner.invoke(app, ["profile", TINY, "-r", "32", "--no-latency"])
    assert result.exit_code == 0 and "total" in result.output and "MACs" in result.output
    bad = runner.invoke(app, ["profile", TINY, "--device", "tpu"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


@cuda
def test_cuda_latency_and_peak_memory():
    model = tiny_model()
    result = measure_latency(model, (4, 3, 32, 32), device="cuda", runs=10, warmup=3)
    assert result.device.startswith("cuda") and result.median_ms > 0
    peak = cuda_peak_memory(model, (4, 3, 32, 32))
    assert peak.train_step_bytes > peak.inference_bytes > 0


@cuda
def test_cuda_graph_replays_the_forward():
    model = tiny_model().cuda().eval()
    x = torch.randn(4, 3, 32, 32, device="cuda")
    calls = []

    def forward():
        calls.append(1)  # Python runs only while capturing: replays skip it
        return model(x)

    result = time_call(forward, device="cuda", warmup=3, runs=10, cuda_graph=True)
    assert result.cuda_graph and result.median_ms > 0
    assert len(calls) == 4  # three side-stream warm-ups and the capture


@cuda
def test_cuda_profile():
    result = profile(archsearch.load_spec(TINY, input_size=32), device="cuda", runs=5, warmup=2)
    assert result.cuda_peak_train_bytes and result.latency and result.latency.device.startswith("cuda")


def _fake_latency(cv: float):
    from archsearch.cost import LatencyResult

    def measure(model, shape, *, device="cpu", dtype="float32", warmup=10, runs=30, threads=None):
        stats = {"median_ms": 2.0, "iqr_ms": 0.1, "mean_ms": 2.0, "std_ms": 2.0 * cv, "min_ms": 1.5}
        return LatencyResult(
            device="cpu (test)", dtype=dtype, batch=shape[0], threads=threads or 1, warmup=warmup, runs=runs,
            cv=cv, samples_ms=(2.0,) * runs, **stats,
        )  # fmt: skip

    return measure


def test_cli_profile_rows_units_and_one_thread(monkeypatch):
    monkeypatch.setattr(profile_module, "measure_latency", _fake_latency(0.02))
    result = CliRunner().invoke(app, ["profile", "bot-50", "-r", "64", "--threads", "1", "--no-cache"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "resnet" in rows["stem"] and "64x16x16" in rows["stem"] and "9,536" in rows["stem"]
    assert "avg pool" in rows["head"] and "1000" in rows["head"] and "2,049,000" in rows["head"]
    assert "9.765 M" in rows["stem"] and "328.5 M" in rows["total"]  # not 0.010 G, 0.328 G
    assert not re.search(r"\b0\.\d+ G\b", result.output)
    assert "1 thread," in result.output and "1 threads" not in result.output
    assert "warning" not in result.output
    args = ["profile", "bot-50", "-r", "64", "--no-latency", "--json"]
    data = json.loads(CliRunner().invoke(app, args).stdout)
    parts = [data["stem"], *data["stages"], data["head"]]
    assert sum(p["params"] for p in parts) == data["params"] and sum(p["macs"] for p in parts) == data["macs"]
    assert data["stem"]["macs"] == data["stem"]["macs_analytic"] and data["head"]["pool"] == "avg"
    assert data["warnings"] == []
    deit = json.loads(CliRunner().invoke(app, ["profile", TINY, "-r", "32", "--no-latency", "--json"]).stdout)
    assert deit["stem"] is None and deit["head"]["pool"] == "cls"


def test_cli_profile_warns_when_latency_varies(monkeypatch):
    monkeypatch.setattr(profile_module, "measure_latency", _fake_latency(0.25))
    result = CliRunner().invoke(app, ["profile", TINY, "-r", "32", "--no-cache", "--runs", "4"])
    assert result.exit_code == 0, result.output
    assert "warning: latency varies: CV 25.0% is above 10%" in " ".join(result.output.split())
    data = json.loads(CliRunner().invoke(app, ["profile", TINY, "-r", "32", "--no-cache", "--json"]).stdout)
    assert len(data["warnings"]) == 1 and "CV 25.0%" in data["warnings"][0]


def test_progress_line_shows_only_on_a_terminal_after_a_delay():
    import io
    import time

    from rich.console import Console

    from archsearch.cli._steps import steps

    def run(terminal: bool, delay: float, seconds: float) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=terminal, width=100)
        with steps("profile x", console=console, delay=delay) as step:
            step("measuring latency")
            time.sleep(seconds)
        return buffer.getvalue()

    assert "profile x: measuring latency" in run(True, 0.05, 1.0)
    assert run(True, 5.0, 0.05) == ""  # quick: no line at all
    assert run(False, 0.05, 0.5) == ""  # a pipe or a log: nothing
