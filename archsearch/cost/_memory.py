"""Memory: activations saved for backward (any device) and CUDA peak memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["CudaPeakMemory", "cuda_peak_memory", "saved_activation_bytes", "train_forward"]


def saved_activation_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one training forward pass.

    This is the activation memory a training step holds at its peak (parameters excluded), measured
    on whatever device the model is on. Where a BatchNorm would see one value per channel (batch 1
    and a 1x1 map: torch refuses to train it), the BatchNorms use their running statistics for the
    pass (:func:`train_forward`); they save the same input for backward.
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
            out = train_forward(model, x)
        del out
    finally:
        model.train(was_training)
    return sum(seen.values())


#: The start of torch's refusal to train a BatchNorm on one value per channel.
_ONE_VALUE = "Expected more than 1 value per channel when training"


def train_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in training mode, for measuring a training pass: where torch refuses a
    BatchNorm that would see one value per channel (``x`` of batch 1 reaching a 1x1 map, as
    resnet-50 does at 32 pixels), the pass runs again with every BatchNorm on its running
    statistics (eval mode), the rest still training, and the modes are restored. Other errors
    propagate."""
    try:
        return model(x)
    except ValueError as exc:
        if not str(exc).startswith(_ONE_VALUE):
            raise
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    try:
        for m in norms:
            m.eval()
        return model(x)
    finally:
        for m in norms:
            m.train()


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
    loss = train_forward(model, x).float().logsumexp(dim=-1).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize(dev)
    train = torch.cuda.max_memory_allocated(dev)
    model.eval()
    return CudaPeakMemory(inference_bytes=inference, train_step_bytes=train)
