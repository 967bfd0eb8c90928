"""Helpers that several test modules share: weight randomisers, the tiny search space, spec files.

(The benchmarks keep their own copies where they need them: ``benchmarks/`` scripts run on their own,
and ``benchmarks/zoo_speed.py`` also runs inside the reference virtual environment, which has neither
archsearch nor this package.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

# --------------------------------------------------------------------------- weights


def randomise_(
    module: torch.nn.Module,
    std: float,
    *,
    add: bool = False,
    vector_mean: float = 0.0,
    seed: int | None = None,
) -> None:
    """Give every parameter of ``module`` random values, in place, so no term is a silent identity.

    Each parameter becomes ``N(0, std²)`` noise plus ``vector_mean`` for 1-D parameters (norm scales
    near 1 keep activations in range), or with ``add=True`` gets that noise added to its value.
    The noise comes from ``torch.Generator().manual_seed(seed)``, or from the global generator (which
    the conftest seeds for every test) when ``seed`` is None. Buffers (BN statistics) are left alone;
    see :func:`perturb_` for those.
    """
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype) * std
            if add:
                p.add_(noise)
            else:
                p.copy_(noise + (vector_mean if p.ndim == 1 else 0.0))


def perturb_(model: torch.nn.Module, seed: int = 1, std: float = 0.1) -> None:
    """Non-trivial weights and BN statistics, in place, so zero-initialised layers take part.

    Every floating-point tensor of the state dict gets ``N(0, std²)`` noise added, except BN running
    variances, set to ``U(0.5, 1.5)`` (kept positive), and running means, set to ``N(0, 0.1²)``.
    Integer buffers (``num_batches_tracked``, index tables) are left alone.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            else:
                t.add_(torch.randn(t.shape, generator=gen) * std)


# --------------------------------------------------------------------------- search spaces and experiments


def tiny_space(dims: Sequence[int] = (8, 16, 24), depth: int = 2) -> dict[str, Any]:
    """A two-stage space on 16x16 one-channel digits that trains in about a second per member.

    Stage 0 chooses its width from ``dims``, has ``depth`` blocks, a conv or attention mixer (with
    key/value stride 1 or 2) and a per-block MLP ratio of 2 or 4; stage 1 is a fixed 32-wide conv
    block. The defaults give 27 members; ``dims=(8, 16), depth=1`` gives 10 (a conv mixer draws no MLP ratio).
    """
    return {
        "input": {"size": 16, "channels": 1},
        "stages": [
            {
                "embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1},
                "dim": {"choice": list(dims)},
                "depth": depth,
                "mixer": {
                    "choice": [
                        "conv",
                        {"kind": "attention", "heads": 2, "qkv": "dw_bn", "kv_stride": {"choice": [1, 2]}},
                    ]
                },
                "mlp_ratio": {"choice": [2, 4], "per_block": True},
            },
            {
                "embed": {"kind": "conv", "kernel": 3, "stride": 2, "padding": 1},
                "dim": 32,
                "depth": 1,
                "mixer": "conv",
            },
        ],
    }


#: A real but quick evaluation (one batch): for the tests about the loop rather than the training.
QUICK: dict[str, Any] = {
    "evaluator": {"kind": "zero_cost", "proxies": ["grad_norm"], "batch_size": 16},
    "objectives": [{"metric": "grad_norm"}, {"metric": "macs"}],
}


# --------------------------------------------------------------------------- files


def write_file(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    """Write ``text`` (UTF-8, as given) to ``tmp_path / name`` and return that path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def costs_agree(spec: Any) -> torch.nn.Module:
    """The model of ``spec`` (a spec dict), after checking that its analytic params, MACs and
    activations equal the traced ones at its native input."""
    import archsearch
    from archsearch.cost import analytic_costs, count_traced

    model = archsearch.build(archsearch.load_spec(spec))
    shape = model.plan.input_shape
    traced = count_traced(model, (1, shape.channels, shape.height, shape.width))
    analytic = analytic_costs(model.plan)
    assert (analytic.params, analytic.macs, analytic.activations) == (
        traced.params,
        traced.macs,
        traced.activations,
    )
    return model
