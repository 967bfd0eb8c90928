"""One-shot search inside ``archsearch search`` (``evaluator: {kind: supernet, ...}``).

The experiment's supernet is trained once, in ``<run_dir>/supernet.pt`` beside the study
(checkpointed every epoch, resumed by the next run; a file lock lets one process train while
PostgreSQL workers on the same file system wait, then all load the same checkpoint). Each trial's
member is then the ordinary ``build(plan)`` model with the weights it inherits, its BatchNorm
statistics recalibrated, scored by validation accuracy (``accuracy`` and ``inherited_accuracy``).
After the search the best members of the Pareto front are retrained from scratch
(:func:`retrain_front`): their accuracies go in the study's ``retrained`` user attribute (a
finished Optuna trial cannot take new attributes), shown by ``archsearch trials`` and the report
as ``retrained_accuracy``, and the members are written with their inherited weights to
``<run_dir>/winners/``.
"""

from __future__ import annotations

import fcntl
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import optuna
import torch
import torch.distributed as dist
from torch import nn

from ..compiler import build
from ..data import Dataset
from ..evaluate import SupernetConfig, TrainConfig, resolve_device, train_and_evaluate
from ..pareto import non_dominated_sort
from ..space import FixedSuggest
from ..spec import NormalizedSpec
from ..supernet import Supernet, SupernetRun, recalibrate, save_member, train_supernet, validation_accuracy
from ._candidate import prepare
from ._experiment import Experiment

__all__ = ["RETRAINED", "OneShot", "retrain_config", "retrain_front"]

#: The study user attribute holding ``{trial number: retrained accuracy}``.
RETRAINED = "retrained"


class _Lock:
    """An exclusive ``flock`` on a file, held while the supernet is trained or loaded."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("a")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class OneShot:
    """The supernet of a one-shot experiment and the scoring of its members."""

    def __init__(self, experiment: Experiment, dataset: Dataset):
        assert isinstance(experiment.evaluator, SupernetConfig)
        self.experiment, self.config, self.dataset = experiment, experiment.evaluator, dataset
        self._net: Supernet | None = None
        self.device = resolve_device(self.config.device)

    @property
    def checkpoint(self) -> Path:
        return self.experiment.run_path / "supernet.pt"

    def net(self) -> Supernet:
        """The trained supernet: trained (or resumed) here on first use, else loaded."""
        if self._net is None:
            self._net = self.train()[0].eval()
        return self._net

    def train(self) -> tuple[Supernet, SupernetRun]:
        """Train (or resume, or load when finished) the supernet into :attr:`checkpoint`.

        One process: under a file lock, so that PostgreSQL workers sharing the run folder wait
        for the one that trains. Under ``torchrun`` (``WORLD_SIZE`` > 1): every rank calls this,
        the process group is started here (NCCL on CUDA, else gloo), each rank takes the GPU of
        its ``LOCAL_RANK``, and rank 0 writes the checkpoint."""
        space, _ = prepare(self.experiment)
        net = Supernet(space, seed=self.config.seed)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        threads = torch.get_num_threads()
        if isinstance(self.config.threads, int):
            torch.set_num_threads(self.config.threads)
        start = time.perf_counter()
        try:
            with _Lock(self.checkpoint.with_suffix(".lock")) if world == 1 else nullcontext():
                run = train_supernet(
                    net, self.dataset, self.config, checkpoint=self.checkpoint, on_epoch=_epoch
                )
        finally:
            torch.set_num_threads(threads)
        if run.resumed_from is None or run.resumed_from < run.epochs:
            _say(
                f"supernet: {run.epochs} epochs, {run.steps} steps, {len(net.slots)} tensors, "
                f"{time.perf_counter() - start:.0f} s; saved in {self.checkpoint}"
            )
        return net, run

    def member(self, plan: NormalizedSpec) -> nn.Module:
        """The member ``plan`` with its inherited weights (an ordinary archsearch model)."""
        return self.net().member(plan)

    def score(self, model: nn.Module) -> float:
        """Recalibrate the member's BatchNorm statistics and return its validation accuracy."""
        cfg = self.config
        model.to(self.device)
        recalibrate(
            model,
            self.dataset,
            batches=cfg.calibration_batches,
            batch_size=cfg.batch_size,
            device=self.device,
            seed=cfg.seed,
        )
        accuracy = validation_accuracy(
            model,
            self.dataset,
            batch_size=cfg.eval_batch_size,
            device=self.device,
            amp=cfg.precision_on(self.device) == "bf16",
        )
        model.to("cpu")
        return accuracy


def _epoch(epoch: int, epochs: int, loss: float) -> None:
    _say(f"supernet: epoch {epoch}/{epochs}, loss {loss:.4f}")


def retrain_config(config: SupernetConfig) -> TrainConfig:
    """The evaluator's training settings with the retraining's epochs."""
    keep = config.model_dump(
        exclude={"kind", "sampling", "paths", "shrink", "calibration_batches", "retrain", "epochs", "steps"}
    )
    return TrainConfig(**keep, epochs=config.retrain.epochs)


def retrain_front(experiment: Experiment, study: optuna.Study) -> dict[int, float]:
    """Retrain the ``retrain.top`` members of the study's Pareto front with the best inherited
    accuracy from scratch (``retrain.epochs``, the evaluator's other settings, weights seeded by
    the sampler's seed), store ``{trial: accuracy}`` in the study's ``retrained`` attribute
    (members already retrained are skipped), and write each with its inherited weights to
    ``<run_dir>/winners/<study>-t<trial>.yaml`` + ``.safetensors`` (or ``.pt``).
    Returns the accuracies retrained now."""
    config = experiment.evaluator
    assert isinstance(config, SupernetConfig)
    if config.retrain.top == 0:
        return {}
    trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state == optuna.trial.TrialState.COMPLETE and t.values and "duplicate_of" not in t.user_attrs
    ]
    if not trials:
        return {}
    directions = [o.sense for o in experiment.objectives]
    ranks = non_dominated_sort([list(t.values) for t in trials], directions)
    front = [t for t, r in zip(trials, ranks, strict=True) if r == 0]
    front.sort(key=lambda t: -float(t.user_attrs.get("inherited_accuracy", -math.inf)))
    done: dict[str, float] = dict(study.user_attrs.get(RETRAINED) or {})
    todo = [t for t in front[: config.retrain.top] if str(t.number) not in done]
    if not todo:
        return {}
    space, dataset = prepare(experiment)
    oneshot = OneShot(experiment, dataset)
    train = retrain_config(config)
    out: dict[int, float] = {}
    for trial in todo:
        plan = space.candidate(FixedSuggest(trial.params)).plan
        if plan is None:
            continue
        inherited = oneshot.member(plan)
        inherited_acc = oneshot.score(inherited)
        save_member(inherited, plan, experiment.run_path / "winners", f"{study.study_name}-t{trial.number}")
        torch.manual_seed(experiment.sampler.seed)
        model = build(plan)
        result = train_and_evaluate(model, dataset, train)
        out[trial.number] = result.accuracy
        done[str(trial.number)] = result.accuracy
        study.set_user_attr(RETRAINED, done)
        _say(
            f"retrained trial {trial.number}: accuracy {result.accuracy:.4f} "
            f"(inherited {inherited_acc:.4f}, {config.retrain.epochs} epochs)"
        )
    return out
