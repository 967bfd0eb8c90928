"""Supernet training: resume after SIGKILL with the same steps and weights; two-process DDP on
the CPU (gloo) equals one process with the doubled batch."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent / "supernet_run.py"
ROOT = SCRIPT.parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _run(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, str(SCRIPT), *args], check=True, env=env or _env(), timeout=600)


def test_resume_after_sigkill_ends_with_the_same_steps_and_weights(tmp_path: Path) -> None:
    checkpoint, killed, whole = tmp_path / "ck.pt", tmp_path / "killed.pt", tmp_path / "whole.pt"
    # the uninterrupted reference runs beside the killed and resumed one (one thread each)
    reference = subprocess.Popen([sys.executable, str(SCRIPT), str(whole), "2", "128"], env=_env())
    try:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(killed), "2", "128", str(checkpoint), "1"],
            env=_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        deadline = time.time() + 300
        while time.time() < deadline:
            line = process.stdout.readline()
            if line.startswith("epoch 1"):
                break
        else:
            process.kill()
            pytest.fail("no epoch finished")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert checkpoint.is_file() and not killed.exists()
        _run(str(killed), "2", "128", str(checkpoint))  # the same command again: resumes after epoch 1
        assert reference.wait(timeout=600) == 0
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    a, b = torch.load(killed), torch.load(whole)
    assert a["steps"] == b["steps"] == 2 * (1438 // 128)
    for key, value in b["state"].items():
        assert torch.equal(a["state"][key], value), key


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_process_ddp_equals_one_process_with_the_doubled_batch(tmp_path: Path) -> None:
    ddp, single = tmp_path / "ddp.pt", tmp_path / "single.pt"
    port = str(_port())
    ranks = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(ddp), "1", "32"],
            env=_env(
                RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port
            ),
        )
        for r in range(2)
    ]
    try:
        _run(str(single), "1", "64")  # beside the two ranks, which spend most of their time starting
        assert [p.wait(timeout=600) for p in ranks] == [0, 0]
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
                p.wait()
    a, b = torch.load(ddp), torch.load(single)
    assert a["steps"] == b["steps"] == 1438 // 64
    for key, value in b["state"].items():
        torch.testing.assert_close(a["state"][key], value, rtol=0, atol=1e-5, msg=key)


def test_shrinking_drops_the_worst_options_after_a_phase() -> None:
    from archsearch.data import DigitsData, load_dataset
    from archsearch.evaluate import SupernetConfig
    from archsearch.space import load_space
    from archsearch.supernet import Supernet, train_supernet

    from .supernet_run import SPACE

    torch.set_num_threads(1)
    data = load_dataset(DigitsData(), input_size=(16, 16), channels=3)
    net = Supernet(load_space(SPACE))
    shrink = {"phases": 2, "drop": 0.5, "paths": 1, "batches": 1}
    config = SupernetConfig(epochs=2, batch_size=256, device="cpu", threads=1, shrink=shrink)
    run = train_supernet(net, data, config)
    # dim, kv_stride and mlp_ratio have two options each: one of each is kept after epoch 1
    assert sorted(run.allowed) == ["stages.0.dim", "stages.0.mixer.kv_stride", "stages.0.mlp_ratio"]
    assert all(len(kept) == 1 for kept in run.allowed.values())
    assert run.epochs == 2 and run.steps == 2 * (1438 // 256)


def test_precision_and_channels_last_reach_the_supernet_training() -> None:
    """channels_last changes the layout, not the result (to rounding); bf16 autocast changes the
    result (it runs in bfloat16 here on the CPU too), so the option is not silently dropped."""
    from archsearch.data import DigitsData, load_dataset
    from archsearch.evaluate import SupernetConfig
    from archsearch.space import load_space
    from archsearch.supernet import Supernet, train_supernet

    from .supernet_run import SPACE

    torch.set_num_threads(1)
    data = load_dataset(DigitsData(), input_size=(16, 16), channels=3)

    def weights(**options: object) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = Supernet(load_space(SPACE))
        config = SupernetConfig(steps=3, epochs=None, batch_size=64, device="cpu", threads=1, **options)
        train_supernet(net, data, config)
        return [p.detach().clone().contiguous() for p in net.parameters()]

    plain = weights()
    nhwc = weights(channels_last=True)
    bf16 = weights(precision="bf16")
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain, nhwc, strict=True))
    assert max((a - b).abs().max().item() for a, b in zip(plain, bf16, strict=True)) > 1e-4
