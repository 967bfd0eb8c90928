"""What the trainer and the zero-cost proxies share: the device, and model/data agreement."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from ..data import Dataset, StreamData
from ..errors import Issue, SpecError

__all__ = ["Device", "check_model_fits", "resolve_device", "rng_devices"]

Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")]


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; a named device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError(Issue(("evaluator", "device"), "CUDA is not available here", name, "auto, cpu"))
        if device.index is not None and device.index >= torch.cuda.device_count():
            allowed = ", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count()))
            raise SpecError(Issue(("evaluator", "device"), "no such CUDA device", name, allowed))
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError(Issue(("evaluator", "device"), "MPS is not available here", name, "auto, cpu"))
    return device


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
