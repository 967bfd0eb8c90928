"""What the trainer and the zero-cost proxies share: the device, and model/data agreement."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from ..data import Dataset, StreamData
from ..errors import Issue, SpecError

__all__ = ["Device", "check_model_fits", "device_problem", "resolve_device", "rng_devices"]

Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")]


def device_problem(name: str) -> tuple[str, str] | None:
    """``(what is wrong, what is allowed)`` when the device ``name`` cannot be used here (not a
    device, CUDA or MPS not available, a CUDA index beyond the devices), else ``None`` (``auto``
    always can). The one wording of every device check: the evaluator's, the latency objectives'
    and constraints', and the CLI's ``--device``."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except RuntimeError:
        return "not a device", "cpu, cuda, cuda:N"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available here", "cpu (or run on a machine with a CUDA device)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return "no such CUDA device", ", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available here", "cpu"
    return None


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; a named device must exist.

    Raises:
        SpecError: at ``evaluator.device``, as :func:`device_problem` words it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = device_problem(name)
    if problem is not None:
        raise SpecError(Issue(("evaluator", "device"), problem[0], name, problem[1]))
    return torch.device(name)


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG state ``torch.random.fork_rng`` must save for ``device``."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def check_model_fits(model: nn.Module, data: Dataset | StreamData) -> None:
    """An archsearch model (one with a ``plan``) must take the data's images and predict its classes."""
    plan = getattr(model, "plan", None)
    shape = getattr(plan, "input_shape", None)
    if shape is None:
        return
    if shape.channels != data.channels:
        raise SpecError(
            Issue(("input", "channels"), f"the data has {data.channels} channels", shape.channels)
        )
    if (shape.height, shape.width) != data.input_size:
        raise SpecError(
            Issue(
                ("input", "size"),
                f"the data's images are {list(data.input_size)}",
                [shape.height, shape.width],
            )
        )
    num_classes = getattr(plan, "num_classes", None)
    if num_classes != data.num_classes:
        raise SpecError(
            Issue(("head", "num_classes"), f"{data.name} has {data.num_classes} classes", num_classes)
        )
