"""Memory: activations saved for backward (any device) and CUDA peak memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["CudaPeakMemory", "cuda_peak_memory", "saved_activation_bytes"]


def saved_activation_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one training forward pass.

    This is the activation memory a training step holds at its peak (parameters excluded), measured
    on whatever device the model is on.
    """
    seen: dict[tuple[int, int], int] = {}
    param_ptrs = {p.data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_ptrs:
            seen[(ptr, storage.nbytes())] = storage.nbytes()
        return t

    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    try:
        x = torch.randn(input_shape, device=device)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        del out
    finally:
        model.train(was_training)
    return sum(seen.values())


@dataclass(frozen=True)
class CudaPeakMemory:
    inference_bytes: int
    train_step_bytes: int


def cuda_peak_memory(model: nn.Module, input_shape: tuple[int, ...], device: str = "cuda") -> CudaPeakMemory:
    """Peak CUDA memory (``max_memory_allocated``) of one inference and one training step."""
    if not torch.cuda.is_available():
        raise RuntimeError("CUDA peak memory was asked for, but no CUDA device is available")
    dev = torch.device(device)
    model = model.to(dev)
    x = torch.randn(input_shape, device=dev)
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    model.eval()
    with torch.inference_mode():
        model(x)
    torch.cuda.synchronize(dev)
    inference = torch.cuda.max_memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = model(x).float().logsumexp(dim=-1).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize(dev)
    train = torch.cuda.max_memory_allocated(dev)
    model.eval()
    return CudaPeakMemory(inference_bytes=inference, train_step_bytes=train)
