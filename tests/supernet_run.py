"""A tiny supernet training, run as a script by tests/test_supernet_train.py (a process to kill,
or one rank of a two-process DistributedDataParallel run)."""

from __future__ import annotations

import os
import sys
import time

import torch

from archsearch.data import DigitsData, load_dataset
from archsearch.evaluate import SupernetConfig
from archsearch.space import load_space
from archsearch.supernet import Supernet, train_supernet

#: LayerNorm only (no BatchNorm: its statistics are per rank under DDP).
SPACE = {
    "input": {"size": 16, "channels": 3},
    "stages": [
        {
            "embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1, "norm": "layer"},
            "dim": {"choice": [8, 16]},
            "depth": {"int": [1, 2]},
            "mixer": {"kind": "attention", "heads": 2, "qkv": "avg", "kv_stride": {"choice": [1, 2]}},
            "mlp_ratio": {"choice": [2, 4]},
        }
    ],
    "head": {"num_classes": 10},
}


def run(out: str, *, epochs: int, batch: int, checkpoint: str | None = None, pause_after: int = 0) -> None:
    torch.set_num_threads(1)
    data = load_dataset(DigitsData(), input_size=(16, 16), channels=3)
    net = Supernet(load_space(SPACE), seed=0)
    config = SupernetConfig(
        epochs=epochs, batch_size=batch, device="cpu", threads=1, sampling="sandwich", paths=1
    )

    def on_epoch(epoch: int, total: int, loss: float) -> None:
        print(f"epoch {epoch}", flush=True)
        if epoch == pause_after:
            time.sleep(600)  # killed here by the test

    result = train_supernet(net, data, config, checkpoint=checkpoint, on_epoch=on_epoch)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"state": net.state_dict(), "steps": result.steps}, out)


if __name__ == "__main__":
    if os.environ.get("WORLD_SIZE"):
        torch.distributed.init_process_group("gloo")
    out, epochs, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    checkpoint = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    pause = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    run(out, epochs=epochs, batch=batch, checkpoint=checkpoint, pause_after=pause)
    if os.environ.get("WORLD_SIZE"):
        torch.distributed.destroy_process_group()
