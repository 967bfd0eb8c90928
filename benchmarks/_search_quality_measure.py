"""The measured objectives of ``benchmarks/search_quality.py``: each member's score is measured
for real when a sampler proposes it, and kept by spec hash in a file under the cache folder, so
that reruns, other samplers and other seeds proposing the same member cost nothing.

- NASWOT (Mellor et al. 2021, v1, :func:`archsearch.evaluate.naswot`): the member rebuilt at a
  reduced resolution (the same spec, ``input.size`` replaced), initialised from seed 0, on a batch
  of 8 digits. Where the time goes (CvT-13 at 32 px, one core): about half of it building the
  model, most of that drawing initial weights twice -- PyTorch's default init of every
  ``nn.Linear`` and then archsearch's own truncated-normal init over it
  (:func:`archsearch.compiler.build`) -- and half the forward/backward and the copy NASWOT takes.
  :func:`fast_build` skips the draw that is thrown away (the Linear layers' default init) and takes
  ``trunc_normal_(std=0.02)`` truncated at +-2 (100 standard deviations, so never truncating) as
  the plain normal it equals in law, from a pool of stored draws reused across members (the
  ``k``-th tensor of one shape takes the ``k``-th stored draw of that shape, instead of drawing 17M
  normal numbers; :class:`_NormalPool`). Each member's weights have the law ``build`` gives them,
  not the same values (the random stream differs), so scores equal ``build``'s in distribution.
  The copy of the model :func:`~archsearch.evaluate.naswot` takes to leave the caller's model
  untouched (a deep copy: a third of the time) is skipped, as the model is built for that score
  alone; the score is the same.
- Inherited accuracy (one-shot, SPOS): the supernet of ``hybrid_small`` trained once with the
  settings of ``experiments/quickstart_oneshot.yaml`` (weights cached in the cache folder and
  resumed if a run stops), each member scored with the weights it inherits after BatchNorm
  recalibration, on the digits' validation images (:func:`archsearch.supernet.inherited_accuracy`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from archsearch.compiler import build
from archsearch.core import NormalizedSpec
from archsearch.data import Dataset, DigitsData, load_dataset
from archsearch.evaluate import SupernetConfig, ZeroCostConfig, zero_cost_scores
from archsearch.space import load_space
from archsearch.spec import load_spec, normalize, spec_hash

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Problem:
    """One benchmark problem: a space at ``input_size`` (MACs and params are analytic there) and a
    score measured at ``measure_size`` (``naswot``, or ``accuracy``: one-shot inherited)."""

    name: str
    space: str
    input_size: int
    score: str
    measure_size: int
    constraints: dict[str, Any] | None = None

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"]

    @property
    def metrics(self) -> list[str]:
        return [self.score, "macs"]


PROBLEMS = {
    "cvt13": Problem("cvt13", "cvt13_nas.yaml", 224, "naswot", 32),
    "hybrid_small": Problem("hybrid_small", "hybrid_small.yaml", 32, "accuracy", 32),
    "hybrid_stages": Problem(
        "hybrid_stages",
        "hybrid_stages.yaml",
        224,
        "naswot",
        96,  # 2 % of the members are not valid at 64 px (a 1x1 map under kv_stride 2); all are at 96
        constraints={"params": {"max": 20.0e6}, "macs": {"max": 2.0e9}},  # ~70 % rejected
    ),
}


class ValueCache:
    """``{spec hash: value}`` in a JSON-lines file that several processes may append to at once
    (one short line per write, opened in append mode)."""

    def __init__(self, path: Path):
        self.path = path
        self.values: dict[str, float] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    self.values.update(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a killed writer (or a blank one)
                    continue

    def get(self, key: str) -> float | None:
        return self.values.get(key)

    def put(self, key: str, value: float) -> None:
        self.values[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({key: value}) + "\n")


_LINEAR_RESET = nn.Linear.reset_parameters
_TRUNC_NORMAL = nn.init.trunc_normal_


class _NormalPool:
    """Normal draws kept for reuse: the ``k``-th tensor of a given shape, mean and std that a
    build draws takes the same stored draw in every build (the tensor takes its storage: only
    for models whose weights are never written); within one model two tensors never share a
    draw. Each tensor is still an independent-entries normal of its mean and std, its law under
    ``build``; what changes is only that members share draws, as members built from one seed
    already do. Holds at most ``limit`` numbers (then draws afresh)."""

    def __init__(self, limit: int = 200_000_000):
        self.limit, self.size = limit, 0
        self.draws: dict[tuple[Any, ...], torch.Tensor] = {}
        self.seen: dict[tuple[Any, ...], int] = {}

    def fill(self, tensor: torch.Tensor, mean: float, std: float) -> torch.Tensor:
        shape = (tuple(tensor.shape), tensor.dtype, float(mean), float(std))
        k = self.seen.get(shape, 0)
        self.seen[shape] = k + 1
        draw = self.draws.get((*shape, k))
        with torch.no_grad():
            if draw is None:
                tensor.normal_(mean, std)
                if self.size + tensor.numel() <= self.limit:
                    self.draws[(*shape, k)] = tensor.detach().clone()
                    self.size += tensor.numel()
                return tensor
            return tensor.set_(draw)  # shared storage: NASWOT never writes a weight


_POOL = _NormalPool()


def _normal_if_never_truncated(
    tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, **kw: Any
) -> torch.Tensor:
    if kw or std <= 0 or (mean - a) / std < 20 or (b - mean) / std < 20:
        return _TRUNC_NORMAL(tensor, mean, std, a, b, **kw)
    return _POOL.fill(tensor, mean, std)


@contextmanager
def _fast_init() -> Iterator[None]:
    """Inside: ``nn.Linear`` skips its default init (archsearch's model re-initialises every
    Linear weight and bias), and a truncated normal cut at 20+ standard deviations is taken
    from :data:`_POOL` as the plain normal it equals in law."""
    nn.Linear.reset_parameters = lambda self: None  # type: ignore[method-assign]
    nn.init.trunc_normal_ = _normal_if_never_truncated  # type: ignore[assignment]
    _POOL.seen.clear()
    try:
        yield
    finally:
        nn.Linear.reset_parameters = _LINEAR_RESET  # type: ignore[method-assign]
        nn.init.trunc_normal_ = _TRUNC_NORMAL


def fast_build(plan: NormalizedSpec) -> nn.Module:
    """``build(plan)`` with weights of the same distribution, drawn once (see the module's
    docstring). Every ``nn.Linear`` of an archsearch model is re-initialised by the model itself,
    so none is left with uninitialised memory."""
    with _fast_init():
        return build(plan)


def remeasured(plan: NormalizedSpec, size: int) -> NormalizedSpec:
    """The member ``plan`` at ``size`` x ``size`` pixels (its spec with ``input.size`` replaced).
    Raises :class:`archsearch.SpecError` where the member is not valid at that size."""
    data = plan.spec.model_dump(mode="json", exclude_none=True)
    return normalize(load_spec(data, input_size=size))


class _Score:
    """A member's score at ``size`` px, measured once (:meth:`measure`) and kept in ``cache``."""

    size: int
    cache: ValueCache
    measured: int
    times: list[float]  # CPU seconds of each measurement (process time)

    def measure(self, small: NormalizedSpec) -> float:
        raise NotImplementedError

    def __call__(self, plan: NormalizedSpec) -> float:
        small = remeasured(plan, self.size)
        key = spec_hash(small)
        value = self.cache.get(key)
        if value is None:
            start = time.process_time()
            value = self.measure(small)
            self.times.append(time.process_time() - start)
            self.cache.put(key, value)
            self.measured += 1
        return value


class Naswot(_Score):
    """NASWOT of a member at ``problem.measure_size``, on a batch of 8 digits, cached."""

    def __init__(self, problem: Problem, cache: Path):
        self.size = problem.measure_size
        self.cache = ValueCache(cache / f"search_quality_{problem.name}.jsonl")
        self.data = load_dataset(DigitsData(), input_size=(self.size, self.size), channels=3)
        self.config = ZeroCostConfig(proxies=["naswot"], batch_size=8, device="cpu")
        self.measured, self.times = 0, []

    def measure(self, small: NormalizedSpec) -> float:
        torch.manual_seed(0)
        model = fast_build(small)
        model.__deepcopy__ = lambda memo: model  # built for this score alone: no protective copy
        score = zero_cost_scores(model, self.data, self.config)["naswot"]
        return float(score) if math.isfinite(score) else -1e9


def oneshot_config(quick: bool) -> SupernetConfig:
    """The evaluator of ``experiments/quickstart_oneshot.yaml`` on one CPU thread (``quick``: 4
    steps)."""
    data = yaml.safe_load((ROOT / "experiments" / "quickstart_oneshot.yaml").read_text())["evaluator"]
    data.update(device="cpu", threads=1)
    if quick:
        data.update(epochs=None, steps=4, warmup_epochs=0)
    return SupernetConfig(**data)


class Inherited(_Score):
    """The accuracy a member inherits from the supernet of ``problem``'s space, trained once
    (cached as ``supernet_<problem>.pt``, resumed after a stop), cached by spec hash."""

    def __init__(self, problem: Problem, cache: Path, quick: bool):
        from archsearch.supernet import Supernet, train_supernet

        self.config = oneshot_config(quick)
        self.size = problem.measure_size
        tag = "_quick" if quick else ""
        self.cache = ValueCache(cache / f"search_quality_{problem.name}{tag}.jsonl")
        self.data: Dataset = load_dataset(DigitsData(), input_size=(self.size, self.size), channels=3)
        space = load_space(ROOT / "search_spaces" / problem.space, input_size=self.size, num_classes=10)
        self.net = Supernet(space, seed=self.config.seed)
        cache.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(1)
        say = (
            (lambda e, n, loss: print(f"supernet epoch {e}/{n} loss {loss:.4f}", flush=True))
            if not quick
            else None
        )
        self.run = train_supernet(
            self.net,
            self.data,
            self.config,
            checkpoint=cache / f"supernet_{problem.name}{tag}.pt",
            on_epoch=say,
        )
        self.net.eval()
        self.measured, self.times = 0, []

    def measure(self, small: NormalizedSpec) -> float:
        from archsearch.supernet import inherited_accuracy

        value, _ = inherited_accuracy(
            self.net,
            small,
            self.data,
            calibration_batches=self.config.calibration_batches,
            batch_size=self.config.batch_size,
            eval_batch_size=self.config.eval_batch_size,
            device=torch.device("cpu"),
            seed=self.config.seed,
        )
        return float(value)


def scorer(problem: Problem, cache: Path, quick: bool) -> Naswot | Inherited:
    """The measured score of ``problem``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return Inherited(problem, cache, quick) if problem.score == "accuracy" else Naswot(problem, cache)


class MeasuredEvaluator:
    """The trial loop's evaluator: analytic MACs and params at the problem's resolution, the
    measured score (nothing else is built)."""

    def __init__(self, problem: Problem, score: Naswot | Inherited):
        self.problem, self.score = problem, score

    def build(self, plan: Any) -> Any:
        return plan

    def costs(self, plan: Any, costs: Any, spec_hash: str, model: Any) -> dict[str, float]:
        return {"macs": float(costs.macs), "params": float(costs.params)}

    def evaluate(self, plan: Any, on_epoch: Any) -> Result:
        return Result({self.problem.score: self.score(plan)})


@dataclass
class Result:
    """What the trial loop reads of an evaluation."""

    metrics: dict[str, float]
    curve: list[float] = field(default_factory=list)
    epochs: int = 0
