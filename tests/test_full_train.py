"""Full training (``archsearch train``): mixup/CutMix and EMA semantics, exact resume, the run
folder's files, weights that ``create_model`` loads, config errors, the CLI, and a two-process
DistributedDataParallel run on the CPU (gloo)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import archsearch
from archsearch import SpecError
from archsearch.cli import app
from archsearch.data import Dataset
from archsearch.train import (
    MixupConfig,
    ModelEma,
    TrainError,
    fit,
    load_train_config,
    mix_batch,
    mixup_target,
    soft_target_cross_entropy,
    train_architecture,
)

from .small_nets import tiny_hybrid
from .train_run import CONFIG
from .train_run import run as run_single

TINY_SPEC = """\
name: tiny
input: {size: 16, channels: 1}
stages:
  - {embed: {kind: conv, kernel: 3, stride: 2, norm: batch}, dim: 8, depth: 1, mixer: conv}
head: {num_classes: 10}
"""
SCRIPT = Path(__file__).resolve().parent / "train_run.py"
ROOT = SCRIPT.parent.parent


# --------------------------------------------------------------------------- mixup, EMA


def test_mixup_target_mixes_smoothed_one_hot_labels():
    y = torch.tensor([0, 2, 1])
    t = mixup_target(y, 3, lam=0.7, smoothing=0.3)
    on, off = 1 - 0.3 + 0.1, 0.1
    first = torch.tensor([on, off, off]) * 0.7 + torch.tensor([off, on, off]) * 0.3  # y[0] with y.flip(0)[0]
    torch.testing.assert_close(t[0], first)
    torch.testing.assert_close(t.sum(-1), torch.ones(3))


def test_mixup_blends_each_image_with_the_mirrored_batch():
    x = torch.randn(4, 1, 6, 6)
    mixed = x.clone()
    lam = mix_batch(mixed, MixupConfig(cutmix_alpha=0.0), np.random.default_rng(0))
    assert 0 < lam < 1
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x.flip(0))


def test_cutmix_pastes_a_box_and_lam_is_the_area_left():
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    mixed = x.clone()
    lam = mix_batch(mixed, MixupConfig(mixup_alpha=0.0), np.random.default_rng(3))
    pasted = (mixed != x).float().mean().item()  # every pasted pixel differs (the images differ)
    assert 0 < pasted < 1 and lam == pytest.approx(1 - pasted)
    assert torch.equal(mixed[0][mixed[0] != x[0]], x[1][mixed[0] != x[0]])


def test_mixup_off_by_probability_leaves_the_batch():
    x = torch.randn(4, 1, 6, 6)
    mixed = x.clone()
    assert mix_batch(mixed, MixupConfig(prob=0.0), np.random.default_rng(0)) == 1.0
    assert torch.equal(mixed, x)


def test_soft_target_cross_entropy_equals_label_smoothing_for_one_hot():
    logits, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 2, 2])
    expected = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.2)
    torch.testing.assert_close(soft_target_cross_entropy(logits, mixup_target(y, 4, 1.0, 0.2)), expected)


def test_ema_is_the_exponential_average_of_the_state():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEma(model, decay=0.75)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model.train()(torch.randn(4, 2))  # moves the BatchNorm statistics
    ema.update(model)
    for key, value in model.state_dict().items():
        got = ema.module.state_dict()[key]
        if value.is_floating_point():
            torch.testing.assert_close(got, 0.75 * before[key] + 0.25 * value)
        else:
            assert torch.equal(got, value)  # num_batches_tracked is copied
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training


# --------------------------------------------------------------------------- runs


def _fit(data: Dataset, out: Path, **kwargs) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    model = tiny_hybrid()
    model.head.drop.p = 0.2  # dropout: resume must replay its draws too
    return model, fit(model, data, CONFIG, out, **kwargs)


@pytest.fixture(scope="module")
def straight(digits16: Dataset, tmp_path_factory) -> tuple[torch.nn.Module, object, Path]:
    out = tmp_path_factory.mktemp("straight")
    model, result = _fit(digits16, out)
    return model, result, out


def test_resume_continues_bit_identically(digits16: Dataset, tmp_path: Path, straight):
    model, result, out = straight
    _, first = _fit(digits16, tmp_path, stop_after=1)
    assert first.epochs == 1 and first.weights is None and (tmp_path / "checkpoint.pt").is_file()
    resumed, second = _fit(digits16, tmp_path, resume=True)
    assert second.resumed_from == 1 and second.epochs == 2 and second.steps == result.steps
    for key, value in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    assert second.accuracy == result.accuracy and second.ema_accuracy == result.ema_accuracy
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    reference = torch.load(out / "checkpoint.pt", weights_only=True)
    for key, value in reference["ema"].items():
        assert torch.equal(saved["ema"][key], value), key
    assert [r["train_loss"] for r in saved["log"]] == [r["train_loss"] for r in reference["log"]]


def test_run_folder_holds_log_result_and_loadable_weights(straight):
    model, result, out = straight
    assert math.isfinite(result.accuracy) and result.ema_accuracy is not None and result.epochs == 2
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step,lr,train_loss,accuracy,ema_accuracy") and len(rows) == 3
    assert json.loads((out / "result.json").read_text())["accuracy"] == result.accuracy
    spec = model.plan.spec
    loaded = archsearch.create_model(spec, weights=result.weights)
    ema = archsearch.create_model(spec, weights=result.ema_weights)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model.cpu().eval()(x))
        assert not torch.allclose(ema.eval()(x), loaded(x))


def test_an_existing_checkpoint_needs_resume_and_the_same_settings(digits16: Dataset, straight):
    out = straight[2]
    with pytest.raises(TrainError, match=r"checkpoint\.pt exists: pass --resume"):
        fit(tiny_hybrid(), digits16, CONFIG, out)
    other = CONFIG.model_copy(update={"lr": 5e-3})
    with pytest.raises(TrainError, match=r"other settings \(lr: 0.01 -> 0.005\)"):
        fit(tiny_hybrid(), digits16, other, out, resume=True)


def test_train_architecture_writes_the_spec_beside_the_weights(tmp_path: Path):
    config = CONFIG.model_copy(update={"epochs": 1, "mixup": None, "ema": None})
    result = train_architecture(tiny_hybrid().plan.spec, config, tmp_path)
    model = archsearch.create_model(tmp_path / "spec.yaml", weights=tmp_path / "model.safetensors")
    assert model.plan.name == "tiny-hybrid" and result.ema_weights is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs: 0\n", "cfg.yaml:1: epochs: must be greater than 0"),
        ("epochs: 3\nmixup: {prob: 2}\n", "cfg.yaml:2: mixup.prob: must be at most 1"),
        ("epochs: 3\nema: {decay: 1}\n", "cfg.yaml:2: ema.decay: must be less than 1"),
        ("epochs: 3\nprecision: fp16\n", "cfg.yaml:2: precision: not an allowed value"),
        ("epochs: 3\nepoch: 2\n", "unknown key 'epoch'"),
    ],
)
def test_config_errors_name_the_file_and_line(tmp_path: Path, text: str, message: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        load_train_config(path)


def test_config_overrides_and_relative_data_root(tmp_path: Path):
    path = tmp_path / "cfg.yaml"
    path.write_text("epochs: 3\ndata: {kind: imagefolder, root: images}\n")
    config = load_train_config(path, ["mixup.prob=0.5", "ema.decay=0.99"])
    assert config.data.root == str(tmp_path / "images")  # type: ignore[union-attr]
    assert config.mixup is not None and config.mixup.prob == 0.5 and config.ema.decay == 0.99  # type: ignore[union-attr]
    with pytest.raises(SpecError, match=r"<command line> epochs=x: epochs"):
        load_train_config(path, ["epochs=x"])


def test_cli_trains_stops_and_resumes(tmp_path: Path):
    runner = CliRunner()
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    args = ["train", str(spec), "epochs=2", "batch_size=64", "device=cpu", "threads=1", "flip=false"]
    args += ["-o", str(tmp_path / "run")]
    first = runner.invoke(app, [*args, "--stop-after", "1"])
    assert first.exit_code == 0, first.output
    assert "stopped after epoch 1 of 2: continue with --resume" in first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "pass --resume" in again.output
    second = runner.invoke(app, [*args, "--resume", "--json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output)["resumed_from"] == 1
    assert (tmp_path / "run" / "model.safetensors").is_file()


# --------------------------------------------------------------------------- torchrun, gloo


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_end_with_identical_weights_equal_to_one_with_the_whole_batch(tmp_path: Path):
    port = str(_port())
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    ranks = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(tmp_path)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2"},
        )
        for r in range(2)
    ]
    assert [p.wait(timeout=600) for p in ranks] == [0, 0]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a["steps"] == b["steps"] == 2 * (1437 // 64) and a["accuracy"] == b["accuracy"]
    for key, value in a["state"].items():
        assert torch.equal(b["state"][key], value), key
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world"] == 2 and result["epochs"] == 2 and Path(result["weights"]).is_file()
    single, single_result = run_single(tmp_path / "single", 64)  # the same global batches, one process
    assert single_result.steps == a["steps"]
    for key, value in single.state_dict().items():  # equal up to the order of the sums
        mine = a["state"][key]
        if key.endswith("attn.qkv.bias"):
            # the key bias (rows 16-31) has a zero gradient (softmax ignores a shift of all logits):
            # AdamW scales its rounding noise up to steps of the learning rate, so it is left out
            keep = [*range(16), *range(32, 48)]
            mine, value = mine[keep], value[keep]
        torch.testing.assert_close(mine, value.cpu(), atol=2e-6, rtol=1e-5, msg=key)


def test_gpu_options_together_train_to_finite_results(digits16: Dataset, tmp_path: Path):
    """bf16 autocast, channels-last, gradient checkpointing and torch.compile (graph capture
    only: ``aot_eager``) in one run, with mixup and EMA; the weights still load."""
    config = CONFIG.model_copy(
        update={
            "epochs": 1,
            "precision": "bf16",
            "channels_last": True,
            "grad_checkpointing": True,
            "compile": True,
            "compile_backend": "aot_eager",
        }
    )
    torch.manual_seed(0)
    model = tiny_hybrid()
    result = fit(model, digits16, config, tmp_path)
    assert math.isfinite(result.log[0]["train_loss"]) and 0 <= result.accuracy <= 1
    assert result.peak_memory_mb is None  # measured on CUDA only
    loaded = archsearch.create_model(model.plan.spec, weights=result.weights)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


def test_train_architecture_streams_an_image_folder(tmp_path: Path):
    """``cache: stream``: batches decoded per step from the files (random-resized crop, flip),
    validation read from the stream too; the run sees every full batch of each epoch and learns
    three flat colours."""
    from PIL import Image

    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)}
    for split, count in (("train", 8), ("val", 3)):
        for name, colour in colours.items():
            folder = tmp_path / "images" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (30 + 5 * i, 24), colour).save(folder / f"{i}.png")
    data = {"kind": "imagefolder", "root": str(tmp_path / "images"), "cache": "stream", "workers": 0}
    settings = {"epochs": 3, "batch_size": 4, "mixup": None, "ema": None, "data": data, "warmup_epochs": 0}
    config = type(CONFIG).model_validate({**CONFIG.model_dump(), **settings})
    result = train_architecture(tiny_hybrid().plan.spec, config, tmp_path / "run", num_classes=3)
    assert result.epochs == 3 and result.steps == 3 * (24 // 4)
    assert result.accuracy == 1.0  # 9 validation images of three flat colours
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 3


def test_the_steady_rate_leaves_the_first_steps_compilation_out(
    digits16: Dataset, tmp_path: Path, monkeypatch
):
    """``torch.compile`` compiles at the first steps: the log keeps the whole epoch's images/s and
    adds the warm-up's seconds and the rate of the other steps, in a process's first epoch (also
    after a resume); later epochs have no warm-up."""
    import time

    from archsearch.train import _loop

    class SlowFirstCall(torch.nn.Module):
        """A stand-in for a compiled model: the first forward pays a 'compilation'."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 1:
                time.sleep(1.0)
            return self.inner(x)

    monkeypatch.setattr(_loop, "compile_model", lambda model, backend: SlowFirstCall(model))
    config = CONFIG.model_copy(update={"compile": True, "epochs": 3})

    def check(rows: list[dict], warm_epoch: int) -> None:
        for row in rows:
            assert row["seconds"] > row["warmup_seconds"]
            if row["epoch"] == warm_epoch:  # images_per_second: the whole epoch, compilation included
                assert row["warmup_seconds"] >= 1.0 and row["seconds"] >= 1.0
                assert row["steady_images_per_second"] > row["images_per_second"]
            else:
                assert row["warmup_seconds"] == 0.0
                assert row["steady_images_per_second"] == pytest.approx(row["images_per_second"])

    torch.manual_seed(0)
    first = fit(tiny_hybrid(), digits16, config, tmp_path, stop_after=1)
    check(first.log, warm_epoch=1)
    torch.manual_seed(0)
    resumed = fit(tiny_hybrid(), digits16, config, tmp_path, resume=True)
    check(resumed.log[1:], warm_epoch=2)  # the first epoch after the resume warms up again
    header = (tmp_path / "log.csv").read_text().splitlines()[0]
    assert header.endswith("seconds,images_per_second,warmup_seconds,steady_images_per_second")
