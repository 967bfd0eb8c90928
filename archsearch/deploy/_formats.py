"""The three formats: writing each file, and running it back to compare with PyTorch.

Writers take the model (in eval mode), the target, an example input and the spec's metadata and
return how the file was written; ``check`` returns what ran the file, the batches and the largest
absolute difference of the logits.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..compiler import build
from ..errors import ExportError
from ..spec import load_spec
from ._weights import save_weights

__all__ = [
    "INSTALL",
    "check",
    "check_other_size",
    "inputs",
    "require",
    "runner",
    "write_onnx",
    "write_safetensors",
    "write_torchscript",
]

INSTALL = "pip install 'archsearch[export]'"


def missing(package: str, why: str) -> str:
    """``PACKAGE is not installed: pip install 'archsearch[export]' (WHY)``, the words of every
    error about an optional export package."""
    return f"{package} is not installed: {INSTALL} ({why})"


def require(format: str, check: bool, which: str) -> None:
    """Refuse, before the model is built, an export whose packages are missing: ``onnx`` for the
    ONNX format (both torch.onnx exporters write through it), ``onnxscript`` for the ``dynamo``
    exporter, ``onnxruntime`` for checking an ONNX file, ``safetensors`` for that format.

    Raises:
        ExportError: :func:`missing`'s one line for the first package not installed.
    """
    needs = {
        "onnx": [("onnx", "torch.onnx writes ONNX files with it")]
        + ([("onnxscript", "--onnx-exporter dynamo needs it")] if which == "dynamo" else [])
        + ([("onnxruntime", "it runs the ONNX file back; or skip that check: --no-check")] if check else []),
        "safetensors": [("safetensors", "--format safetensors writes the file with it")],
    }
    for package, why in needs.get(format, []):
        if importlib.util.find_spec(package) is None:
            raise ExportError(missing(package, why))


def inputs(batch: int, chw: tuple[int, int, int], seed: int) -> list[torch.Tensor]:
    """Seeded inputs at ``batch`` and ``batch + 1`` (the second checks that the batch is free)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, *chw, generator=g) for b in (batch, batch + 1)]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings (TracerWarning, torch.jit's and the legacy exporter's deprecation), no exporter
    chatter on stdout, no torch.onnx log lines below ERROR, while a file is written."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:240]}" if text else type(exc).__name__


# --------------------------------------------------------------------------- writers


def write_onnx(
    model: nn.Module, target: Path, example: torch.Tensor, meta: dict[str, Any], opset: int | None, which: str
) -> str:
    tmp = target.with_name(target.name + ".part")
    names = {"input_names": ["image"], "output_names": ["logits"]}
    dynamic = bool(meta["spec"].get("dynamic_size"))  # height and width free too (checked after)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}
    errors: list[str] = []
    used = ""
    for kind in ("legacy", "dynamo") if which == "auto" else (which,):
        try:
            with _quiet():
                if kind == "legacy":
                    torch.onnx.export(
                        model,
                        (example,),
                        str(tmp),
                        dynamo=False,
                        opset_version=opset,
                        dynamic_axes={"image": axes, "logits": {0: "batch"}},
                        **names,  # type: ignore[arg-type]
                    )
                else:
                    _dynamo_export(model, example, tmp, opset, names, dynamic)
            used = "torch.onnx (TorchScript-based)" if kind == "legacy" else "torch.onnx (torch.export-based)"
            break
        except ExportError:
            raise
        except Exception as exc:  # an exporter that cannot take the model: try the next, then say why
            errors.append(f"{kind} exporter: {_first_line(exc)}")
            tmp.unlink(missing_ok=True)
    else:
        raise ExportError(f"{target}: torch.onnx cannot export {meta['name']}: " + "; ".join(errors))
    version = _onnx_metadata(tmp, meta)
    os.replace(tmp, target)
    return used + (f", opset {version}" if version else "")


def _dynamo_export(
    model: nn.Module,
    example: torch.Tensor,
    tmp: Path,
    opset: int | None,
    names: dict[str, Any],
    dynamic: bool,
) -> None:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise RuntimeError(missing("onnxscript", "the torch.export-based exporter needs it")) from None
    axes = {0: torch.export.Dim("batch", min=1, max=65536)}
    if dynamic:
        axes |= {i: torch.export.Dim(n, min=2, max=8192) for i, n in ((2, "height"), (3, "width"))}
    if example.shape[0] < 2:  # torch.export specialises a size of 1: trace at 2, the axis stays free
        example = example.expand(2, *example.shape[1:]).contiguous()
    torch.onnx.export(
        model,
        (example,),
        str(tmp),
        dynamo=True,
        opset_version=opset,
        dynamic_shapes=(axes,),
        external_data=False,
        verbose=False,
        **names,
    )


def _onnx_metadata(path: Path, meta: dict[str, Any]) -> int | None:
    """Store the spec in the model's metadata and run onnx's checker (when onnx is installed);
    returns the opset."""
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(str(path))
    for key, value in (("name", meta["name"]), ("spec_hash", meta["spec_hash"]), ("spec", meta["spec"])):
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"archsearch.{key}", value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def write_torchscript(
    model: nn.Module, target: Path, example: torch.Tensor, meta: dict[str, Any], opset: int | None, which: str
) -> str:
    tmp = target.with_name(target.name + ".part")
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={"archsearch.json": json.dumps(meta)})
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        why = _first_line(exc)
        raise ExportError(f"{target}: torch.jit.trace cannot trace {meta['name']}: {why}") from None
    os.replace(tmp, target)
    return f"torch.jit.trace at batch {example.shape[0]}"


def write_safetensors(
    model: nn.Module, target: Path, example: torch.Tensor, meta: dict[str, Any], opset: int | None, which: str
) -> str:
    try:
        import safetensors
    except ImportError:
        raise ExportError(missing("safetensors", f"--format safetensors writes {target} with it")) from None
    metadata = {f"archsearch.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    save_weights(model, target, metadata)
    return f"safetensors {safetensors.__version__}"


# --------------------------------------------------------------------------- the self-check


#: A loaded file that runs a batch (a float32 ``(B, C, H, W)`` tensor) to logits, and what runs it.
Runner = tuple[Callable[[torch.Tensor], Any], str]


def runner(format: str, target: Path) -> Runner:
    """Load the written file ``target`` once for the self-checks: an onnxruntime session, the
    ``torch.jit.load``'ed module, or a fresh build with the safetensors file's weights; ``(run,
    what)``: ``run(x)`` gives the logits, ``what`` names what ran them."""
    if format == "safetensors":
        return _safetensors_runner(target)
    return _onnx_runner(target) if format == "onnx" else _torchscript_runner(target)


def check(
    format: str,
    model: nn.Module,
    target: Path,
    batch: int,
    chw: tuple[int, int, int],
    seed: int,
    loaded: Runner | None = None,
) -> tuple[str, tuple[int, ...], float]:
    """Run ``target`` (``loaded``: its :func:`runner`, else loaded here) and ``model`` on seeded
    inputs at ``batch`` and ``batch + 1`` (safetensors: ``batch``): what ran the file, the
    batches, the largest absolute difference of the logits."""
    xs = inputs(batch, chw, seed)
    if format == "safetensors":
        xs = xs[:1]
    run, what = loaded if loaded is not None else runner(format, target)
    worst = 0.0
    for x in xs:
        with torch.inference_mode():
            expected = model(x).float().numpy()
        try:
            got = np.asarray(run(x), dtype=np.float32)
        except Exception as exc:
            raise ExportError(
                f"{target}: {what} fails on a batch of {x.shape[0]}: {_first_line(exc)}"
            ) from None
        if got.shape != expected.shape:
            raise ExportError(
                f"{target}: {what} gives logits of shape {list(got.shape)} for a batch of {x.shape[0]}, "
                f"PyTorch {list(expected.shape)}"
            )
        diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
        worst = max(worst, diff if math.isfinite(diff) else math.inf)
    return what, tuple(int(x.shape[0]) for x in xs), worst


def check_other_size(
    format: str,
    model: nn.Module,
    target: Path,
    batch: int,
    chw: tuple[int, int, int],
    seed: int,
    tolerance: float,
    loaded: Runner | None = None,
) -> tuple[tuple[int, int], float]:
    """For a ``dynamic_size`` model: run the file at a second input size, the built one plus the
    model's total reduction on each side (every stage's map one token larger or more, Swin windows
    padded), and return that ``(height, width)`` and the largest absolute difference of the logits.
    Raises :class:`ExportError` (one line, the file removed) when the file cannot take that size or
    its logits differ by more than ``tolerance``: the exporters keep the sizes a model was traced at
    wherever its code branches on the input's size. ``loaded``: the file's :func:`runner` from the
    first check (an onnxruntime session and a TorchScript module take any size their graph
    allows), so the file is not read again; without it, it is loaded here."""
    plan = getattr(model, "plan", None)
    step = plan.stages[-1].reduction if plan is not None and plan.stages else 32
    hw = (chw[1] + step, chw[2] + step)
    x = inputs(batch, (chw[0], *hw), seed)[0]
    with torch.inference_mode():
        expected = model(x).float().numpy()
    run, what = loaded if loaded is not None else runner(format, target)
    size = f"a {hw[0]}x{hw[1]} input"
    try:
        got = np.asarray(run(x), dtype=np.float32)
    except Exception as exc:
        cause = _first_line(exc)
        why = f"fails on {size} ({cause if len(cause) <= 100 else cause[:99] + '…'})"
    else:
        diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else math.inf
        if diff <= tolerance:
            return hw, diff
        why = f"gives other logits than PyTorch on {size} (max abs diff {diff:.3g})"
    target.unlink(missing_ok=True)
    how = "torch.jit.trace" if format == "torchscript" else "torch.onnx"
    raise ExportError(
        f"{target}: dynamic_size: {what} {why}: {how} keeps the {chw[1]}x{chw[2]} size this model "
        f"was traced at, so the file would take only {chw[1]}x{chw[2]} inputs (removed); export with "
        "dynamic_size: false for such a file, or as safetensors to rebuild the model at any size"
    )


def _onnx_runner(target: Path) -> tuple[Callable[[torch.Tensor], Any], str]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError(
            missing("onnxruntime", f"it runs {target} back; or skip that check: --no-check")
        ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"{target}: onnxruntime cannot load it: {_first_line(exc)}") from None
    name = session.get_inputs()[0].name
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # a failing run is our one error line, not ort's log too
    return (lambda x: session.run(None, {name: x.numpy()}, quiet)[0]), f"onnxruntime {ort.__version__}"


def _torchscript_runner(target: Path) -> tuple[Callable[[torch.Tensor], Any], str]:
    with _quiet():
        loaded = torch.jit.load(str(target), map_location="cpu")
    loaded.eval()

    def run(x: torch.Tensor) -> Any:
        with torch.inference_mode(), _quiet():
            return loaded(x).float().numpy()

    return run, "torch.jit.load"


def _safetensors_runner(target: Path) -> tuple[Callable[[torch.Tensor], Any], str]:
    from safetensors import safe_open
    from safetensors.torch import load_model

    with safe_open(str(target), framework="pt") as f:
        stored = (f.metadata() or {}).get("archsearch.spec")
    if stored is None:
        raise ExportError(f"{target}: the metadata holds no archsearch.spec")
    fresh = build(load_spec(json.loads(stored)))
    load_model(fresh, str(target), strict=True)
    fresh.eval()

    def run(x: torch.Tensor) -> Any:
        with torch.inference_mode():
            return fresh(x).float().numpy()

    return run, "a fresh build from the file's spec with its weights"
