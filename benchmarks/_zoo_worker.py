"""The worker side of ``zoo_speed.py``: one process builds one model (ours or the reference), then
answers JSON requests on stdin (time forwards; save the reference's weights, input and output; copy
them into ours and compare), one JSON reply per line on stdout behind :data:`PROTOCOL_PREFIX`.

Stdlib and torch only at import time (the reference virtual environment runs it too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from _zoo_reference import (
    EQUIV_BATCH,
    SEED,
    build_ours,
    build_ref,
    pair_state_dicts,
    perturb_,
    reference_state,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

PROTOCOL_PREFIX = "@@zoo_speed "  # marks the worker's protocol lines on stdout


def time_forward(
    model: nn.Module, x: torch.Tensor, warmup: int, runs: int, warmup_s: float = 0.0
) -> list[float]:
    """``warmup`` untimed forwards, continued until ``warmup_s`` seconds have passed, then ``runs``
    timed ones. The time floor matters for the first, fast model of a run: a few forwards of a
    fresh process are not enough to reach steady state (allocator, oneDNN primitive caches)."""
    import torch

    times: list[float] = []
    with torch.inference_mode():
        start = time.perf_counter()
        done = 0
        while done < warmup or (warmup and time.perf_counter() - start < warmup_s):
            model(x)
            done += 1
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def worker_main(args: argparse.Namespace) -> int:
    proto: IO[str] = sys.stdout
    sys.stdout = sys.stderr  # anything the libraries print must not reach the protocol stream

    def reply(obj: dict[str, Any]) -> None:
        proto.write(PROTOCOL_PREFIX + json.dumps(obj) + "\n")
        proto.flush()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    try:
        if args.worker == "ours":
            model, size = build_ours(args.model)
        else:
            model, size = build_ref(args.model, args.cvt_ref)
    except Exception as exc:
        reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    model.eval()
    hello: dict[str, Any] = {
        "ok": True,
        "size": size,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": sys.executable,
    }
    if args.worker == "ref":
        with contextlib.suppress(ImportError):
            import timm

            hello["timm"] = timm.__version__
    reply(hello)

    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            if cmd == "quit":
                reply({"ok": True})
                return 0
            if cmd == "time":
                gen = torch.Generator().manual_seed(SEED)
                x = torch.randn(req["batch"], 3, *size, generator=gen)
                times = time_forward(model, x, req["warmup"], req["runs"], req.get("warmup_s", 0.0))
                reply({"ok": True, "times_ms": times})
            elif cmd == "save":  # reference side of the equivalence check
                perturb_(model, SEED + 1)
                gen = torch.Generator().manual_seed(SEED + 2)
                x = torch.randn(EQUIV_BATCH, 3, *size, generator=gen)
                with torch.inference_mode():
                    y = model(x)
                state = reference_state(args.model, model)
                torch.save({"state": state, "input": x, "output": y}, req["path"])
                reply({"ok": True})
            elif cmd == "check":  # our side: copy the reference weights in and compare outputs
                saved = torch.load(req["path"], weights_only=True)
                state, reason = pair_state_dicts(saved["state"], model.state_dict())
                if state is None:
                    reply({"ok": True, "status": "mismatch", "reason": reason})
                    continue
                model.load_state_dict(state, strict=True)
                with torch.inference_mode():
                    y = model(saved["input"])
                ref = saved["output"].reshape(y.shape)
                diff = (y - ref).abs().max().item()
                reply(
                    {
                        "ok": True,
                        "status": "ok",
                        "max_abs_diff": diff,
                        "max_abs_ref": ref.abs().max().item(),
                        "tensors": len(state),
                    }
                )
            else:
                reply({"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception as exc:
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return 0
