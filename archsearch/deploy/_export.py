"""``export``: a spec (or a built model) as ONNX, TorchScript or safetensors, checked against PyTorch.

Every export runs the written file back and compares its outputs with the PyTorch model's on the
same seeded inputs, at two batch sizes where the format keeps the batch free (ONNX and
TorchScript): onnxruntime for ONNX, ``torch.jit.load`` for TorchScript, and for safetensors a fresh
build from the spec stored in the file's metadata with the weights loaded back into it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..compiler import ArchNet, build
from ..core import output_file_problem
from ..errors import ExportError
from ..spec import NormalizedSpec, Spec, load_spec, normalize, spec_hash
from ._formats import check as check_file
from ._formats import check_other_size, inputs, require, write_onnx, write_safetensors, write_torchscript
from ._formats import runner as file_runner
from ._weights import load_weights

__all__ = ["DEFAULT_TOLERANCE", "FORMATS", "SUFFIXES", "ExportResult", "export"]

#: The formats :func:`export` writes.
FORMATS = ("onnx", "torchscript", "safetensors")
#: The file name ending of each format, for the default output path ``<spec name><suffix>``.
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "safetensors": ".safetensors"}
#: Largest absolute difference allowed between the exported model's outputs and PyTorch's (float32).
DEFAULT_TOLERANCE = 1e-4
_EXPORTERS = ("auto", "legacy", "dynamo")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and how its self-check went."""

    path: Path
    format: str
    name: str
    """The spec's name."""
    spec_hash: str
    bytes: int
    exporter: str
    """How the file was written, e.g. ``torch.onnx (TorchScript-based), opset 17``."""
    checked_with: str | None
    """What ran the file back (``onnxruntime 1.22.0``, ``torch.jit.load``, ...); None: not checked."""
    batches: tuple[int, ...]
    """Batch sizes the outputs were compared at."""
    other_size: tuple[int, int] | None
    """``(height, width)`` of the second input size checked for a ``dynamic_size`` spec (the file
    takes any size); None: the file takes only ``input_shape``'s (or was not checked)."""
    max_abs_diff: float | None
    """Largest absolute difference from the PyTorch model's outputs (logits); None: not checked."""
    tolerance: float
    input_shape: tuple[int, int, int]
    """(channels, height, width) the model takes; the batch is free (safetensors: no graph)."""
    num_classes: int
    """Logits per image."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["batches"] = list(self.batches)
        data["input_shape"] = list(self.input_shape)
        data["other_size"] = list(self.other_size) if self.other_size else None
        return data


def _opsets() -> tuple[int, int]:
    """The ONNX opsets torch.onnx writes, lowest and highest (7 and 23 for torch 2.13); imported
    only when an opset is asked for (torch.onnx is slow to import)."""
    from torch.onnx import _constants

    return getattr(_constants, "ONNX_MIN_OPSET", 7), getattr(_constants, "ONNX_MAX_OPSET", 23)


def export(
    source: str | os.PathLike[str] | Mapping[str, Any] | Spec | NormalizedSpec | nn.Module,
    format: str = "onnx",
    path: str | os.PathLike[str] | None = None,
    *,
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
    batch: int = 1,
    tolerance: float = DEFAULT_TOLERANCE,
    check: bool = True,
    opset: int | None = None,
    onnx_exporter: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
    **overrides: Any,
) -> ExportResult:
    """Write ``source`` as ``format`` to ``path`` and check that the file computes what PyTorch does.

    ``source``: a zoo name, a spec YAML (a report's winner), a dict, a :class:`Spec`, a normalised
    spec, or a built :class:`ArchNet` (exported with the weights it holds). ``overrides``
    (``num_classes``, ``input_size``, ``in_chans``) change a spec before it is built, as in
    :func:`archsearch.load_spec`. Without ``weights`` the model keeps its seeded initialisation
    (``seed``); ``weights`` is a ``.safetensors`` file, a ``torch.save``'d state dict or a state
    dict, loaded strictly (see :func:`load_weights`).

    ``format``: ``onnx`` (input ``image`` of shape ``(batch, C, H, W)``, output ``logits`` of shape
    ``(batch, classes)``, the batch axis dynamic; ``onnx_exporter`` ``legacy`` is torch's
    TorchScript-based exporter, ``dynamo`` the ``torch.export`` one (needs onnxscript), ``auto``
    the first, falling back to the second), ``torchscript`` (``torch.jit.trace`` at ``batch``,
    the spec in the archive's ``extra/archsearch.json``) or ``safetensors`` (the state dict, with
    the spec as JSON in the metadata key ``archsearch.spec``). ``path``: a file, or a folder to
    write ``<name><suffix>`` into (:data:`SUFFIXES`); default that name in the working folder.

    The self-check feeds seeded ``(batch, C, H, W)`` float32 inputs, and ``batch + 1`` for ONNX
    and TorchScript, to the file's runtime and to the model in eval mode; the largest absolute
    difference of the logits must be at most ``tolerance``. For a spec with ``dynamic_size: true``
    the ONNX file's height and width axes are dynamic too, and ONNX and TorchScript files are also
    run at a second size (``H`` and ``W`` plus the model's total reduction): a file that takes only
    the traced size (the exporters keep the sizes of a model whose code branches on them, as
    archsearch's resampled tables and Swin windows do) is refused and removed.

    Raises :class:`~archsearch.SpecError` for a bad spec and :class:`~archsearch.ExportError`
    (one line naming the file) for an unsupported format, weights that do not load, a missing
    optional package (``onnx is not installed: pip install 'archsearch[export]' (...)``, checked
    before the model is built: onnx, onnxscript, onnxruntime, safetensors), an exporter failure, a
    ``dynamic_size`` file that fails at the second size, or a self-check over the tolerance (the
    file is then kept, and ``max_abs_diff`` is set on the error).
    """
    if format not in FORMATS:
        raise ExportError(f"format {format!r} is not supported; allowed: {', '.join(FORMATS)}")
    if onnx_exporter not in _EXPORTERS:
        raise ExportError(f"onnx exporter {onnx_exporter!r} is unknown; allowed: {', '.join(_EXPORTERS)}")
    if opset is not None and format == "onnx":
        low, high = _opsets()
        if not low <= opset <= high:  # torch.onnx would fall back to another opset without a word
            raise ExportError(
                f"--opset: ONNX opset {opset} cannot be written by torch.onnx {torch.__version__} "
                f"(got {opset}); allowed: {low} to {high}, or leave it out (the exporter's default)"
            )
    if batch < 1:
        raise ExportError(f"batch must be at least 1, but got {batch}")
    if not tolerance >= 0:
        raise ExportError(f"tolerance must be a number >= 0, but got {tolerance}")
    require(format, check, onnx_exporter)
    say = progress or (lambda _: None)
    say("building the model")
    model, plan = _model(source, overrides, seed)
    if weights is not None:
        say(f"loading the weights from {weights}" if not isinstance(weights, Mapping) else "loading weights")
        load_weights(model, weights)
    target = _target(path, plan.name, format)
    shape = plan.input_shape
    chw = (shape.channels, shape.height, shape.width)
    meta = {
        "name": plan.name,
        "spec_hash": spec_hash(plan.spec),
        "spec": plan.spec.model_dump(mode="json", exclude_none=True),
    }
    was_training = model.training
    model.eval()
    try:
        say(f"writing {target}")
        writer = {"onnx": write_onnx, "torchscript": write_torchscript, "safetensors": write_safetensors}
        exporter = writer[format](model, target, inputs(batch, chw, seed)[0], meta, opset, onnx_exporter)
        checked_with: str | None = None
        batches: tuple[int, ...] = ()
        diff: float | None = None
        other: tuple[int, int] | None = None
        if check:
            say(f"checking {target} against PyTorch")
            loaded = file_runner(format, target)  # read once: both checks run it
            checked_with, batches, diff = check_file(format, model, target, batch, chw, seed, loaded)
            if plan.spec.dynamic_size and format != "safetensors" and diff <= tolerance:
                say(f"checking {target} at another input size (dynamic_size)")
                other, other_diff = check_other_size(
                    format, model, target, batch, chw, seed, tolerance, loaded
                )
                diff = max(diff, other_diff)
    finally:
        model.train(was_training)
    result = ExportResult(
        path=target,
        format=format,
        name=plan.name,
        spec_hash=str(meta["spec_hash"]),
        bytes=target.stat().st_size,
        exporter=exporter,
        checked_with=checked_with,
        batches=batches,
        other_size=other,
        max_abs_diff=diff,
        tolerance=tolerance,
        input_shape=chw,
        num_classes=plan.num_classes,
    )
    if diff is not None and not diff <= tolerance:
        where = checked_with or format
        raise ExportError(
            f"{target}: {where} does not reproduce PyTorch: max abs diff {diff:.3g} > tolerance "
            f"{tolerance:g} (batch {', '.join(map(str, batches))}; the file is kept for inspection)",
            max_abs_diff=diff,
        )
    return result


# --------------------------------------------------------------------------- the model and the path


def _model(source: Any, overrides: dict[str, Any], seed: int) -> tuple[nn.Module, NormalizedSpec]:
    if isinstance(source, nn.Module):
        plan = getattr(source, "plan", None)
        if not isinstance(plan, NormalizedSpec):
            raise ExportError(
                f"a {type(source).__name__} is not an archsearch model; allowed: an ArchNet "
                "(archsearch.build), a spec, a spec file or a zoo name"
            )
        if overrides:
            raise ExportError(
                f"overrides ({', '.join(sorted(overrides))}) change a spec before it is built; "
                "a built model cannot take them"
            )
        return source, plan
    if isinstance(source, NormalizedSpec):
        plan = normalize(load_spec(source.spec, **overrides)) if overrides else source
    else:
        plan = normalize(load_spec(source, **overrides))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: ArchNet = build(plan)
    return model, plan


def _target(path: str | os.PathLike[str] | None, name: str, format: str) -> Path:
    file_name = _file_name(name) + SUFFIXES[format]
    target = Path(file_name) if path is None else Path(path)
    if target.is_dir() or str(path).endswith(("/", os.sep)):  # a folder, or one to create
        target = target / file_name
    if target.exists() and not target.is_file() and not target.is_dir():
        raise ExportError(f"{target}: exists and is not a regular file")
    problem = output_file_problem(target)  # before the export: not an exporter's failure to write
    if problem is not None:
        raise ExportError(f"{target}: {problem}; allowed: a file path in a folder you can write")
    return target


def _file_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-.")
    return keep or "model"
