"""``threads: auto``: free cores read from /proc/stat less this process's own CPU time, a short probe
of what the model gains from more threads, the trainer following both, the passive OpenMP wait
policy, and the quickstart-under-load benchmark on a tiny budget."""

from __future__ import annotations

import ast
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from archsearch.data import Dataset
from archsearch.evaluate import (
    AutoThreads,
    CpuSampler,
    TrainConfig,
    core_ceiling,
    cpu_quota,
    train_and_evaluate,
)

from .small_nets import tiny_hybrid

ROOT = Path(__file__).resolve().parent.parent


class FakeStat:
    """A /proc/stat file, a clock and a process CPU clock that a test moves by hand."""

    def __init__(self, path: Path, cpus: int = 2):
        self.path, self.now, self.own = path, 100.0, 5.0
        self.busy = [0] * cpus
        self.idle = [1000] * cpus  # since boot
        self.slept: list[float] = []
        self.write()

    def write(self) -> None:
        total = f"cpu  {sum(self.busy)} 0 0 {sum(self.idle)} 0 0 0 0 0 0\n"
        lines = [
            f"cpu{i} {b} 0 0 {d} 0 0 0 0 0 0\n"
            for i, (b, d) in enumerate(zip(self.busy, self.idle, strict=True))
        ]
        self.path.write_text(total + "".join(lines) + "intr 1 2 3\nctxt 99\n")

    def advance(self, seconds: float, busy: list[int], own_s: float) -> None:
        """``seconds`` pass (100 ticks a second per CPU), CPU i busy ``busy[i]`` ticks of them."""
        ticks = round(seconds * 100)
        for i, b in enumerate(busy):
            self.busy[i] += b
            self.idle[i] += ticks - b
        self.now += seconds
        self.own += own_s
        self.write()

    def sampler(self, cpus: set[int] | None = None) -> CpuSampler:
        return CpuSampler(
            cpus if cpus is not None else set(range(len(self.busy))),
            stat=self.path,
            clock=lambda: self.now,
            own_cpu=lambda: self.own,
            sleep=self.sleep,
        )

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds, [0] * len(self.busy), 0.0)


# --------------------------------------------------------------------------- free cores


def test_other_processes_use_is_busy_time_less_our_own(tmp_path):
    stat = FakeStat(tmp_path / "stat")
    sampler = stat.sampler()
    # 1 s: CPU 0 fully busy, CPU 1 half busy; this process used 0.5 CPU s, so others used 1 core.
    stat.advance(1.0, [100, 50], own_s=0.5)
    assert sampler.others_busy() == pytest.approx(1.0)
    assert stat.slept == []  # the window since the previous reading was long enough
    stat.advance(1.0, [100, 100], own_s=1.0)
    assert sampler.free_cores(2) == 1  # one busy neighbour leaves one core
    stat.advance(1.0, [100, 100], own_s=2.0)
    assert sampler.free_cores(2) == 2  # all of it was this process
    stat.advance(1.0, [30, 10], own_s=0.0)
    assert sampler.free_cores(2) == 2  # 0.4 of a core elsewhere rounds to nothing
    stat.advance(1.0, [100, 100], own_s=0.0)
    assert sampler.free_cores(2) == 1  # at least one, even when others fill every core
    stat.advance(1.0, [0, 0], own_s=0.0)
    assert sampler.free_cores(1) == 1  # never above the ceiling


def test_only_the_cpus_this_process_may_run_on_count(tmp_path):
    stat = FakeStat(tmp_path / "stat", cpus=4)
    sampler = stat.sampler({2, 3})
    stat.advance(1.0, [100, 100, 0, 100], own_s=0.0)  # CPUs 0 and 1 are someone else's business
    assert sampler.others_busy() == pytest.approx(1.0)
    stat.advance(1.0, [100, 100, 0, 0], own_s=0.0)
    assert sampler.free_cores(4) == 2


def test_a_short_window_is_filled_by_sleeping_and_a_stale_one_replaced(tmp_path):
    stat = FakeStat(tmp_path / "stat")
    sampler = stat.sampler()
    stat.advance(0.03, [3, 3], own_s=0.0)
    sampler.others_busy()
    assert stat.slept == [pytest.approx(0.07)]  # sampled over at least 0.1 s
    stat.advance(600.0, [60000, 0], own_s=0.0)  # ten minutes ago: stale
    stat.slept.clear()
    assert sampler.others_busy() == 0.0  # a fresh 0.1 s window, idle
    assert stat.slept == [pytest.approx(0.1)]


def test_without_proc_stat_every_core_counts_as_free(tmp_path):
    sampler = CpuSampler({0, 1}, stat=tmp_path / "missing", sleep=lambda s: None)
    assert sampler.others_busy() is None
    assert sampler.free_cores(2) == 2


def test_the_real_proc_stat_gives_a_sensible_reading():
    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat")
    sampler = CpuSampler()
    others = sampler.others_busy()
    assert others is not None and 0.0 <= others <= len(sampler.cpus) + 0.5
    assert 1 <= sampler.free_cores(len(sampler.cpus)) <= len(sampler.cpus)


def test_cgroup_quotas_v2_and_v1(tmp_path):
    assert cpu_quota(tmp_path) is None  # none readable
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(tmp_path) == 2  # 1.5 CPUs: two threads may run
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cpu_quota(v1) == 3


def test_the_ceiling_never_exceeds_torch_setting_or_the_cpus():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert core_ceiling(1) == 1
    assert 1 <= core_ceiling(10_000) <= cpus


# --------------------------------------------------------------------------- what the model can use


class StaticLoad:
    """A sampler stand-in: a fixed number of free cores."""

    def __init__(self, free: int):
        self.free = free

    def free_cores(self, ceiling: int) -> int:
        return min(self.free, ceiling)


def _probe(auto: AutoThreads, seconds: dict[int, list[float]]) -> list[int]:
    """Run steps, each taking the next time listed for its thread count, until the probe ends."""
    used = []
    while auto.useful is None:
        n = auto.threads()
        used.append(n)
        auto.record(seconds[n].pop(0))
    return used


def test_a_second_thread_is_kept_only_when_a_step_gets_ten_percent_faster():
    auto = AutoThreads(2, StaticLoad(2))  # type: ignore[arg-type]
    assert auto.start_epoch() == 2
    used = _probe(auto, {1: [1.0, 0.10, 0.11, 0.10], 2: [1.0, 0.07, 0.06, 0.08]})
    assert used == [1, 1, 1, 1, 2, 2, 2, 2]  # a warm-up, then 3 timed steps at each count
    assert auto.useful == 2 and auto.threads() == 2
    auto = AutoThreads(2, StaticLoad(2))  # type: ignore[arg-type]
    auto.start_epoch()
    _probe(auto, {1: [9.0, 0.10, 0.10, 0.12], 2: [0.01, 0.095, 0.093, 0.2]})  # warm-ups do not count
    assert auto.useful == 1 and auto.threads() == 1  # 7% faster is not worth a second core


def test_probing_walks_up_powers_of_two_and_keeps_the_fewest_that_pay():
    auto = AutoThreads(6, StaticLoad(6))  # type: ignore[arg-type]
    auto.start_epoch()
    times = {1: [1, 0.4, 0.4, 0.4], 2: [1, 0.2, 0.2, 0.2], 4: [1, 0.19, 0.19, 0.19], 6: [1, 0.1, 0.3, 0.3]}
    used = _probe(auto, times)  # type: ignore[arg-type]
    assert sorted(set(used)) == [1, 2, 4, 6]
    assert auto.useful == 6  # 4 gains too little over 2; 6 gains enough over 2


def test_the_free_cores_cap_the_threads_every_epoch():
    load = StaticLoad(1)
    auto = AutoThreads(2, load)  # type: ignore[arg-type]
    auto.start_epoch()
    assert [auto.threads() for _ in range(5)] == [1] * 5 and auto.useful is None  # nothing to probe
    load.free = 2
    auto.start_epoch()
    _probe(auto, {1: [1, 0.2, 0.2, 0.2], 2: [1, 0.1, 0.1, 0.1]})
    assert auto.threads() == 2
    load.free = 1  # a neighbour started
    auto.start_epoch()
    assert auto.threads() == 1
    load.free = 2
    auto.start_epoch()
    assert auto.threads() == 2  # probed once, remembered


def test_a_probe_cut_short_by_load_starts_over():
    load = StaticLoad(2)
    auto = AutoThreads(2, load)  # type: ignore[arg-type]
    auto.start_epoch()
    for _ in range(3):
        auto.threads()
        auto.record(0.1)
    load.free = 1
    auto.start_epoch()
    assert auto.threads() == 1
    load.free = 2
    auto.start_epoch()
    assert _probe(auto, {1: [1, 0.2, 0.2, 0.2], 2: [1, 0.1, 0.1, 0.1]}) == [1] * 4 + [2] * 4


def test_one_core_means_one_thread_and_no_readings():
    auto = AutoThreads(1, None)
    assert auto.start_epoch() == 1 and auto.threads() == 1


# --------------------------------------------------------------------------- the trainer


FAST = {"batch_size": 32, "lr": 1e-2, "warmup_epochs": 0.5, "crop_padding": 1, "flip": False}


def test_threads_setting_defaults_to_auto_and_rejects_nonsense():
    assert TrainConfig().threads == "auto"
    assert TrainConfig(threads=3).threads == 3 and TrainConfig(threads=None).threads is None
    for bad in (0, -1, "many"):
        with pytest.raises(ValidationError, match="threads"):
            TrainConfig(threads=bad)


def test_auto_with_one_free_core_trains_exactly_as_one_thread(digits16: Dataset, monkeypatch):
    monkeypatch.setattr("archsearch.evaluate._threads._shared_sampler", StaticLoad(1))
    torch.set_num_threads(2)
    runs = []
    for threads in ("auto", 1):
        torch.manual_seed(0)
        runs.append(
            train_and_evaluate(tiny_hybrid(), digits16, TrainConfig(epochs=2, threads=threads, **FAST))
        )
        assert torch.get_num_threads() == 2  # restored
    auto, fixed = runs
    assert auto.threads == [1, 1] and fixed.threads == [1, 1]
    assert auto.curve == fixed.curve and auto.train_loss == fixed.train_loss  # bit-identical


def test_auto_with_two_free_cores_probes_then_keeps_a_count(digits16: Dataset, monkeypatch):
    monkeypatch.setattr("archsearch.evaluate._threads._shared_sampler", StaticLoad(2))
    torch.set_num_threads(2)
    torch.manual_seed(0)
    result = train_and_evaluate(tiny_hybrid(), digits16, TrainConfig(epochs=2, threads="auto", **FAST))
    assert result.epochs == 2 and len(result.threads) == 2
    assert set(result.threads) <= {1, 2}
    assert torch.get_num_threads() == 2


def test_a_fixed_count_is_used_and_torch_setting_restored(digits16: Dataset):
    torch.set_num_threads(1)
    result = train_and_evaluate(tiny_hybrid(), digits16, TrainConfig(steps=3, threads=2, **FAST))
    assert result.threads == [2] and torch.get_num_threads() == 1


def test_the_cpu_optimizer_path_matches_the_per_tensor_loop_bit_for_bit():
    """The trainer uses AdamW's multi-tensor path on the CPU for speed; results must not change."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 16, 16), torch.randint(0, 10, (16,))
    weights = []
    for foreach in (False, True):
        torch.manual_seed(1)
        model = tiny_hybrid()
        decay = [p for p in model.parameters() if p.ndim >= 2]
        rest = [p for p in model.parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=1e-2, foreach=foreach)
        for _ in range(5):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1).backward()
            optimizer.step()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


# --------------------------------------------------------------------------- OpenMP and the benchmark


def test_importing_archsearch_makes_idle_openmp_threads_sleep_unless_told_otherwise(monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(ROOT)
    code = "import archsearch, os, sys; print(os.environ['OMP_WAIT_POLICY'])"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip() == "PASSIVE", run.stderr
    # torch reads it when it loads OpenMP, so the package sets it before importing anything else
    tree = ast.parse((ROOT / "archsearch" / "__init__.py").read_text())
    first = next(node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom))
    assert isinstance(first, ast.ImportFrom) and [a.name for a in first.names] == ["_openmp"]
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a policy set by the user stays
    assert runpy.run_path(str(ROOT / "archsearch" / "_openmp.py"))["WAIT_POLICY"] == "ACTIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_quickstart_load_benchmark_runs_alone_and_beside_a_busy_process(tmp_path, capsys):
    # the benchmark's main here (its two searches are CLI processes of their own either way)
    out = tmp_path / "q.json"
    main = runpy.run_path(str(ROOT / "benchmarks" / "quickstart_load.py"))["main"]
    main(["--trials", "1", "--steps", "2", "--no-report", "--out", str(out)])
    stdout = capsys.readouterr().out
    result = json.loads(out.read_text())
    alone, beside = result["runs"]
    assert (alone["run"], beside["run"]) == ("alone", "beside_busy")
    for row in (alone, beside):
        assert row["trials_evaluated"] == 1 and row["trials_complete"] == 1 and not row["timed_out"]
        assert 0.0 <= row["best_accuracy"] <= 1.0
        assert row["wall_s"] > 0 and row["cpu_s"] > 0
    assert result["ratio_beside_to_alone"] == pytest.approx(beside["wall_s"] / alone["wall_s"])
    assert beside["busy_process"]["cpu_s"] > 0.3  # the neighbour really spun
    assert alone["best_accuracy"] == beside["best_accuracy"]  # the same search (2 steps: 1 thread either way)
    assert result["targets"]["alone_s_at_most"] is None  # a shortened run is not judged on time
    assert "beside one busy process / alone" in stdout
