"""A tiny full training, run as a script by tests/test_full_train.py: one rank of a two-process
DistributedDataParallel run (``torchrun``'s environment variables), saving its own final state."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from archsearch.data import DigitsData, load_dataset
from archsearch.train import EmaConfig, FullTrainConfig, MixupConfig, fit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.small_nets import tiny_hybrid

CONFIG = FullTrainConfig(
    epochs=2,
    batch_size=32,
    lr=1e-2,
    warmup_epochs=0.5,
    crop_padding=1,
    flip=False,
    device="cpu",
    threads=1,
    mixup=MixupConfig(),
    ema=EmaConfig(decay=0.9),
)

if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    model = tiny_hybrid()
    data = load_dataset(DigitsData(), input_size=(16, 16), channels=1)
    result = fit(model, data, CONFIG, out)
    rank = os.environ.get("RANK", "0")
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"state": state, "accuracy": result.accuracy, "steps": result.steps}, out / f"rank{rank}.pt")
