"""GPU training options shared by the search's trainer and full training: precision (bf16
autocast), channels-last memory format, ``torch.compile``, gradient checkpointing over the
model's blocks, and the measured peak of GPU memory.

Gradient checkpointing follows timm's ``checkpoint_seq`` (each block's activations are dropped
after its forward and recomputed in the backward, ``torch.utils.checkpoint`` without re-entry);
unlike timm, BatchNorm running statistics are restored after the recomputation, so a
checkpointed step updates them once, exactly as an ordinary step does.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "CompileBackend",
    "Precision",
    "autocast_context",
    "block_modules",
    "compile_model",
    "grad_checkpointing",
    "memory_format",
    "peak_memory_mb",
    "reset_peak_memory",
]

Precision = Literal["auto", "fp32", "bf16"]
CompileBackend = Literal["inductor", "aot_eager", "eager"]


def autocast_context(
    precision: Literal["fp32", "bf16"], device: torch.device
) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of the context each forward runs in: ``torch.autocast(device, bfloat16)`` for
    bf16 (matmuls and convolutions in bf16, reductions and the loss in fp32; also on the CPU,
    slowly where it lacks bf16 units), nothing for fp32."""
    if precision == "fp32":
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def memory_format(channels_last: bool) -> torch.memory_format:
    """``torch.channels_last`` (NHWC: what cuDNN's and oneDNN's fastest convolutions read) or the
    default contiguous NCHW layout."""
    return torch.channels_last if channels_last else torch.contiguous_format


def compile_model(model: nn.Module, backend: CompileBackend = "inductor") -> nn.Module:
    """``torch.compile(model, backend=...)``: a wrapper that shares ``model``'s parameters (the
    trained weights stay in ``model``). The first forward compiles (tens of seconds on the CPU,
    where inductor needs a C++ compiler); ``aot_eager`` checks the graph capture without code
    generation. Raises ``RuntimeError`` naming the backend when torch cannot compile here."""
    try:
        return torch.compile(model, backend=backend)  # type: ignore[return-value]
    except Exception as exc:  # pragma: no cover - a torch without dynamo support
        raise RuntimeError(f"torch.compile (backend {backend}) is not available here: {exc}") from exc


def block_modules(model: nn.Module) -> list[nn.Module]:
    """The blocks gradient checkpointing wraps: every module in ``model.stages[i].blocks`` of an
    archsearch model (:class:`~archsearch.ArchNet`; stems, embeddings and the head are not
    wrapped). Raises ``ValueError`` for a model without stages of blocks."""
    stages = getattr(model, "stages", None)
    blocks: list[nn.Module] = []
    if isinstance(stages, nn.ModuleList | nn.Sequential):
        for stage in stages:
            inner = getattr(stage, "blocks", None)
            if isinstance(inner, nn.ModuleList | nn.Sequential):
                blocks.extend(inner)
    if not blocks:
        raise ValueError(
            f"gradient checkpointing needs a model with stages of blocks (an archsearch model), "
            f"but got a {type(model).__name__} without `stages[i].blocks`"
        )
    return blocks


@contextlib.contextmanager
def grad_checkpointing(
    model: nn.Module, enabled: bool = True, *, keep_norm_stats: bool = True
) -> Iterator[None]:
    """While in the context, every block of ``model`` (:func:`block_modules`) runs under
    ``torch.utils.checkpoint`` in training (eval forwards are left alone): its activations are
    freed after the forward and recomputed in the backward, trading about one extra forward for
    the memory of all but the blocks' inputs. Losses and gradients are those of the plain model
    (dropout's random numbers are replayed). With ``keep_norm_stats`` the BatchNorm running
    statistics are put back after each recomputation, so they are updated once per step (turn it
    off under ``torch.compile``, which traces the recomputation itself). The state dict is
    unchanged: the blocks' ``forward`` is patched per instance and restored on exit."""
    if not enabled:
        yield
        return
    blocks = block_modules(model)
    for block in blocks:
        block.forward = functools.partial(_checkpointed, block, block.forward, keep_norm_stats)
    try:
        yield
    finally:
        for block in blocks:
            block.__dict__.pop("forward", None)


def _checkpointed(block: nn.Module, forward: Callable[..., Any], keep_stats: bool, *args: Any) -> Any:
    if not (block.training and torch.is_grad_enabled()):
        return forward(*args)
    if not keep_stats:
        return checkpoint(forward, *args, use_reentrant=False)
    return checkpoint(
        forward, *args, use_reentrant=False, context_fn=lambda: (nullcontext(), _KeepNormStats(block))
    )


class _KeepNormStats:
    """The context of a recomputation: the BatchNorm buffers it updates again are restored."""

    def __init__(self, block: nn.Module):
        self.norms = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.saved: list[dict[str, torch.Tensor]] = []

    def __enter__(self) -> None:
        self.saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in self.norms]

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for module, buffers in zip(self.norms, self.saved, strict=True):
                for name, value in buffers.items():
                    getattr(module, name).copy_(value)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak of allocated GPU memory on a CUDA ``device`` (nothing elsewhere)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    """The most GPU memory allocated since :func:`reset_peak_memory`, in MiB
    (``torch.cuda.max_memory_allocated``: tensors only, not the allocator's cache); ``None`` off CUDA."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
