"""A tiny full training, run as a script by tests/test_full_train.py: one rank of a two-process
DistributedDataParallel run (``torchrun``'s environment variables), saving its own final state.
The net has LayerNorm only and mixup is off, so that the run can equal one process with the
doubled batch (BatchNorm statistics and mixup's mirrored pairs are per process)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import archsearch
from archsearch.data import DigitsData, load_dataset
from archsearch.train import EmaConfig, FullTrainConfig, MixupConfig, fit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

#: One LayerNorm stage: conv embedding, attention.
LN_SPEC = {
    "name": "tiny-ln",
    "input": {"size": 16, "channels": 1},
    "stages": [
        {
            "embed": {"kind": "conv", "kernel": 3, "stride": 2, "norm": "layer"},
            "dim": 16,
            "depth": 1,
            "mixer": {"kind": "attention", "heads": 2},
            "mlp_ratio": 2,
        }
    ],
    "head": {"num_classes": 10},
}
DDP_CONFIG = CONFIG.model_copy(update={"mixup": None})


def run(out: Path, batch_size: int) -> tuple[torch.nn.Module, object]:
    """Train the LayerNorm net with :data:`DDP_CONFIG` at ``batch_size`` per process into ``out``."""
    torch.manual_seed(0)
    model = archsearch.build(archsearch.load_spec(LN_SPEC))
    data = load_dataset(DigitsData(), input_size=(16, 16), channels=1)
    return model, fit(model, data, DDP_CONFIG.model_copy(update={"batch_size": batch_size}), out)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    model, result = run(out, 32)
    rank = os.environ.get("RANK", "0")
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"state": state, "accuracy": result.accuracy, "steps": result.steps}, out / f"rank{rank}.pt")
