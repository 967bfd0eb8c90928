"""The one-shot evaluator's settings: ``evaluator: {kind: supernet, ...}`` in an experiment."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..core import StrictModel
from ._train import TrainConfig

__all__ = ["RetrainConfig", "ShrinkConfig", "SupernetConfig"]

PositiveInt = Annotated[int, Field(gt=0)]


class ShrinkConfig(StrictModel):
    """Progressive shrinking of the space while the supernet trains (after DA-NAS, Dai et al.
    ECCV 2020): training is cut into ``phases``; after each phase but the last, every option of
    every choice is scored by the mean held-out accuracy of ``paths`` random members that take it
    (on ``batches`` validation batches), and the worst ``drop`` share of each choice's options is
    no longer trained. The search still ranks the whole space (dropped options keep the weights
    they had)."""

    phases: Annotated[int, Field(ge=2, le=16)] = 2
    """Training phases (epochs are split evenly; at least 2)."""
    drop: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """Share of each choice's options dropped after a phase (at least one option stays)."""
    paths: PositiveInt = 4
    """Random members scored per option."""
    batches: PositiveInt = 2
    """Validation batches (``eval_batch_size`` images each) per member scored."""


class RetrainConfig(StrictModel):
    """Retrain the best members of the Pareto front from scratch once the search ends."""

    epochs: PositiveInt = 5
    """Epochs of each retraining (the other settings are the evaluator's)."""
    top: Annotated[int, Field(ge=0)] = 3
    """Members of the Pareto front retrained, best inherited accuracy first (0: none)."""


class SupernetConfig(TrainConfig):
    """One-shot: train a weight-sharing supernet of the space once (``epochs`` of the training
    settings below), then score each member with the weights it inherits, after recalibrating its
    BatchNorm statistics on ``calibration_batches`` training batches.

    The GPU options ``precision`` and ``channels_last`` apply to the supernet's training and to the
    retraining of the front (``retrain``); ``compile`` and ``grad_checkpointing`` to the retraining
    only (the supernet changes its path every step, which a compiled graph would recompile for)."""

    kind: Literal["supernet"] = "supernet"  # type: ignore[assignment]
    sampling: Literal["uniform", "sandwich"] = "uniform"
    """Paths trained per step: ``uniform``, one member drawn uniformly (SPOS, Guo et al. 2020);
    ``sandwich``, the largest, the smallest and ``paths`` random members, their gradients summed
    (BigNAS, Yu et al. 2020; without its in-place distillation)."""
    paths: PositiveInt = 2
    """Random members per step besides the largest and the smallest under ``sandwich``."""
    shrink: ShrinkConfig | None = None
    """Progressive shrinking of the trained space (``null``: none)."""
    calibration_batches: PositiveInt = 4
    """Training batches whose statistics replace a member's BatchNorm running statistics."""
    retrain: RetrainConfig = RetrainConfig()
    """Retraining of the best members from scratch after the search."""
