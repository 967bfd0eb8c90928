"""The checkpoint of a full training: model, optimizer, step, EMA, RNG states and the epoch log,
written atomically after every epoch, read back by ``--resume``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["TrainError", "load_checkpoint", "save_checkpoint"]


class TrainError(RuntimeError):
    """A full training cannot start or resume (an existing run folder, a checkpoint of another
    model or other settings)."""


def save_checkpoint(
    target: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: nn.Module | None,
    epoch: int,
    step: int,
    settings: dict[str, Any],
    spec_hash: str,
    log: list[dict[str, Any]],
) -> None:
    """Write the state after ``epoch`` epochs (``step`` optimizer steps; the learning rate is a
    function of the step) to ``target``, atomically: a ``.tmp`` file then ``os.replace``, so a
    kill mid-write leaves the previous checkpoint whole. RNG states: torch's CPU generator and
    every CUDA device's."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "epoch": epoch,
            "step": step,
            "settings": settings,
            "spec_hash": spec_hash,
            "log": log,
            "rng": rng,
        },
        tmp,
    )
    os.replace(tmp, target)


def load_checkpoint(
    target: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: nn.Module | None,
    settings: dict[str, Any],
    spec_hash: str,
    device: torch.device,
) -> dict[str, Any]:
    """Load ``target`` into ``model``, ``optimizer`` and ``ema``, restore the RNG states, and
    return its ``epoch``, ``step`` and ``log``.

    Raises:
        TrainError: the file is not a checkpoint of this training, was written for another
            architecture (spec hash) or with other settings (the differing keys are named).
    """
    try:
        saved = torch.load(target, map_location=device, weights_only=True)
    except Exception as exc:
        raise TrainError(
            f"{target}: not a readable training checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(saved, dict) or "settings" not in saved:
        raise TrainError(f"{target}: not a checkpoint of `archsearch train`")
    if saved["spec_hash"] != spec_hash:
        raise TrainError(
            f"{target}: a checkpoint of another architecture (spec hash {saved['spec_hash']}, "
            f"this one {spec_hash}); use another --out"
        )
    if saved["settings"] != settings:
        keys = sorted(
            k
            for k in settings.keys() | saved["settings"].keys()
            if saved["settings"].get(k) != settings.get(k)
        )
        shown = ", ".join(f"{k}: {saved['settings'].get(k)!r} -> {settings.get(k)!r}" for k in keys)
        raise TrainError(
            f"{target}: trained with other settings ({shown}); restore them or use another --out"
        )
    if (saved["ema"] is None) != (ema is None):  # pragma: no cover - the settings hold `ema`
        raise TrainError(f"{target}: the EMA setting differs from the checkpoint's")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if ema is not None:
        ema.load_state_dict(saved["ema"])
    torch.set_rng_state(saved["rng"]["torch"].cpu())
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in saved["rng"]["cuda"]])
    return {"epoch": saved["epoch"], "step": saved["step"], "log": saved["log"]}
