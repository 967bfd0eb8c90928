"""``train_architecture``: a spec (YAML, zoo name or a report's winner) built, its data loaded at
the spec's input size, trained with :func:`fit`, and the spec written beside the weights."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..compiler import build
from ..data import load_data
from ..spec import NormalizedSpec, Spec, load_spec, normalize, spec_yaml
from ._batches import BatchSource
from ._checkpoint import TrainError
from ._config import FullTrainConfig
from ._loop import FitResult, fit

__all__ = ["train_architecture"]


def train_architecture(
    source: str | os.PathLike[str] | Spec,
    config: FullTrainConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    stop_after: int | None = None,
    batches: BatchSource | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> FitResult:
    """Train the architecture ``source`` (a spec YAML, a zoo name, a report's winner YAML or a
    :class:`Spec`; ``overrides`` such as ``num_classes=10``, ``input_size=32`` as in
    :func:`archsearch.load_spec`) on ``config.data`` resized to its ``input.size`` and channels,
    into the folder ``out``: ``spec.yaml``, ``checkpoint.pt``, ``log.csv``, ``result.json``,
    ``model.safetensors`` (and ``model-ema.safetensors``), which
    ``archsearch.create_model(out / "spec.yaml", weights=out / "model.safetensors")`` loads.

    The weights are initialised from ``config.seed``. See :func:`fit` for ``resume``,
    ``stop_after``, ``batches`` and ``on_epoch``, and for what is raised
    (:class:`~archsearch.SpecError` for a bad spec or data, ``TrainError``, ``TrainingDiverged``).
    """
    folder = Path(out)
    for place in (folder, *folder.parents):  # before the data is loaded: nothing is written yet
        if place.exists() and not place.is_dir():
            raise TrainError(
                f"{place} is a file, not a folder (got -o {folder}); allowed: a new folder or a "
                "training run's folder"
            )
    spec = load_spec(source, **overrides)
    plan: NormalizedSpec = normalize(spec)
    shape = plan.input_shape
    data = load_data(config.data, input_size=(shape.height, shape.width), channels=shape.channels)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        model = build(plan)
    result = fit(
        model, data, config, folder, resume=resume, stop_after=stop_after, batches=batches, on_epoch=on_epoch
    )
    if int(os.environ.get("RANK", "0")) == 0:
        body = spec_yaml(spec.model_dump(mode="json", exclude_none=True))
        (folder / "spec.yaml").write_text(body, encoding="utf-8")
    return result
