"""Counting a built model: parameters, and multiply-accumulates traced op by op.

The unit is fvcore's (one multiply-add = 1, what papers call FLOPs) and so are its conventions:
matrix products and convolutions count their MACs, norms a few per element (batch norm 2 in
eval, layer/group norm 5 with affine), global average pooling 1 per input element; elementwise
ops, softmax, pooling windows and data movement count 0 by convention. Unlike fvcore, the count
runs at the dispatcher level, so ``scaled_dot_product_attention`` (fused, any backend) is counted
like the explicit ``q @ k^T`` and ``attn @ v``; an in-place op (``addmm_``, ``add_``) is counted
like its out-of-place op, and any other op that is neither counted nor on the zero-by-convention
list, in-place or not, is reported in ``uncounted`` and a warning, never silently dropped.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["TracedCounts", "UncountedOpsWarning", "count_params", "count_traced", "op_kind"]


class UncountedOpsWarning(UserWarning):
    """Ops that may carry compute ran but were not counted."""


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _mm(args: Any, out: Any) -> int:
    a, b = args[0], args[1]
    return _numel(a.shape) * b.shape[-1]


def _addmm(args: Any, out: Any) -> int:
    return _mm(args[1:], out)


def _bmm(args: Any, out: Any) -> int:
    a, b = args[0], args[1]
    return _numel(a.shape) * b.shape[-1]


def _baddbmm(args: Any, out: Any) -> int:
    return _bmm(args[1:], out)


def _conv(args: Any, out: Any) -> int:
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    # MACs = (output elements) x (input channels per group) x kernel area; transposed: input side.
    per_output = _numel(w.shape[1:])
    if transposed:
        return _numel(x.shape) * w.shape[1] * _numel(w.shape[2:])
    return _numel(out.shape if isinstance(out, torch.Tensor) else out[0].shape) * per_output


def _sdpa(args: Any, out: Any) -> int:
    q, k, v = args[0], args[1], args[2]
    batch_heads = _numel(q.shape[:-2])
    return batch_heads * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _sdpa_bshd(args: Any, out: Any) -> int:  # (batch, seq, heads, dim) layouts of the raw kernels
    q, k, v = args[0], args[1], args[2]
    return q.shape[0] * q.shape[2] * q.shape[1] * k.shape[1] * (q.shape[-1] + v.shape[-1])


def _batch_norm(training_index: int) -> Callable[[Any, Any], int]:
    def count(args: Any, out: Any) -> int:
        affine = args[1] is not None
        training = bool(args[training_index]) if training_index >= 0 else False
        if training:
            return _numel(args[0].shape) * (5 if affine else 4)
        return _numel(args[0].shape) * (2 if affine else 1)

    return count


def _norm(weight_index: int) -> Callable[[Any, Any], int]:
    def count(args: Any, out: Any) -> int:
        affine = len(args) > weight_index and args[weight_index] is not None
        return _numel(args[0].shape) * (5 if affine else 4)

    return count


def _input_elements(args: Any, out: Any) -> int:
    return _numel(args[0].shape)


def _mean(args: Any, out: Any) -> int:
    # A mean over the spatial dims down to a (B, C) vector is the head's global average pooling
    # (fvcore counts timm's adaptive_avg_pool2d: 1 per input element). Kept dims (B, C, 1, 1) are a
    # squeeze-excitation's squeeze, which fvcore does not count in timm (aten::mean): zero.
    dims = args[1] if len(args) > 1 else None
    keepdim = len(args) > 2 and bool(args[2])
    if args[0].dim() == 4 and dims is not None and sorted(d % 4 for d in dims) == [2, 3] and not keepdim:
        return _numel(args[0].shape)
    return 0


def _output_elements(scale: int) -> Callable[[Any, Any], int]:
    return lambda args, out: scale * _numel(out.shape)


_ATEN = torch.ops.aten
#: overload packet name -> MACs
HANDLERS: dict[str, Callable[[Any, Any], int]] = {
    "mm": _mm,
    "addmm": _addmm,
    "bmm": _bmm,
    "baddbmm": _baddbmm,
    "convolution": _conv,
    "_convolution": _conv,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
    "_scaled_dot_product_flash_attention": _sdpa,
    "_scaled_dot_product_efficient_attention": _sdpa,
    "_scaled_dot_product_cudnn_attention": _sdpa,
    "_scaled_dot_product_fused_attention_overrideable": _sdpa,
    "_flash_attention_forward": _sdpa_bshd,
    "_efficient_attention_forward": _sdpa_bshd,
    "native_batch_norm": _batch_norm(5),
    "_native_batch_norm_legit": _batch_norm(5),
    "_native_batch_norm_legit_no_training": _batch_norm(-1),
    "cudnn_batch_norm": _batch_norm(5),
    "native_layer_norm": _norm(2),
    "native_group_norm": _norm(1),
    "_adaptive_avg_pool2d": _input_elements,
    "mean": _mean,
    "upsample_nearest2d": _output_elements(1),
    "upsample_bilinear2d": _output_elements(4),
    # involution's weighted sum (archsearch::involution_sum): group_channels * k*k per output element
    "involution_sum": _input_elements,
}

#: Ops that count zero by convention (elementwise, reductions of no note, data movement, factories).
#: An in-place variant (``add_``, ``relu_``) follows its out-of-place op (see :func:`op_kind`), so only
#: in-place ops without an out-of-place twin in these tables are listed (``copy_``, ``fill_``, ...).
ZERO_BY_CONVENTION = frozenset(
    (
        "add",
        "sub",
        "rsub",
        "mul",
        "div",
        "neg",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "pow",
        "reciprocal",
        "abs",
        "sign",
        "clamp",
        "clamp_min",
        "clamp_max",
        "relu",
        "gelu",
        "silu",
        "sigmoid",
        "tanh",
        "hardswish",
        "hardsigmoid",
        "hardtanh",
        "leaky_relu",
        "_softmax",
        "softmax",
        "_log_softmax",
        "log_softmax",
        "where",
        "masked_fill",
        "eq",
        "ne",
        "lt",
        "gt",
        "le",
        "ge",
        "logical_not",
        "max_pool2d_with_indices",
        "max_pool2d",
        "avg_pool2d",
        "_native_multi_head_attention",
        "sum",
        "amax",
        "max",
        "min",
        "argmax",
        "view",
        "_unsafe_view",
        "reshape",
        "permute",
        "transpose",
        "t",
        "expand",
        "clone",
        "contiguous",
        "cat",
        "stack",
        "split",
        "split_with_sizes",
        "unbind",
        "slice",
        "select",
        "index",
        "index_select",
        "index_copy",
        "index_put",
        "gather",
        "unsqueeze",
        "squeeze",
        "flatten",
        "alias",
        "detach",
        "copy_",
        "_to_copy",
        "empty",
        "empty_like",
        "empty_strided",
        "zeros",
        "zeros_like",
        "ones",
        "ones_like",
        "full",
        "fill_",
        "zero_",
        "arange",
        "randn",
        "rand",
        "bernoulli_",
        "native_dropout",
        "roll",
        "constant_pad_nd",
        "pad",
        "new_empty",
        "new_zeros",
        "new_ones",
        "_reshape_alias",
        "as_strided",
        "lift_fresh",
        "_safe_softmax",
        "unfold",
        "im2col",
        "col2im",
        "_local_scalar_dense",
        "scalar_tensor",
        "chunk",
        "repeat",
        "expand_as",
        "sym_size",
    )
)


@dataclass
class TracedCounts:
    """What one traced forward pass of a model computed."""

    params: int
    trainable_params: int
    macs: int
    activations: int = 0
    """Output elements of every op that carries MACs (a proxy for activation memory)."""
    by_scope: dict[str, int] = field(default_factory=dict)
    """MACs per top-level part (``stem``, ``stages.0``, ..., ``head``) where the model has them."""
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)
    """Ops that ran, may carry compute and were not counted: name -> calls."""


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.scope = "other"
        self.by_scope: Counter[str] = Counter()
        self.by_op: Counter[str] = Counter()
        self.activations = 0
        self.uncounted: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        kind, base = op_kind(name)
        if kind == "counted":
            macs = int(HANDLERS[base](args, out))
            if macs:
                self.by_op[base] += macs
                self.by_scope[self.scope] += macs
                first = out if isinstance(out, torch.Tensor) else out[0]
                self.activations += first.numel()
        elif kind == "uncounted":
            self.uncounted[name] += 1
        return out


def op_kind(name: str) -> tuple[Literal["counted", "zero", "uncounted"], str]:
    """How the counter treats an aten op (its overload packet name, e.g. ``"addmm_"``), and the
    name it is counted under.

    An in-place op (a name ending in one ``_``: ``addmm_``, ``baddbmm_``, ``add_``) is counted
    like its out-of-place op under that op's name (``addmm``), and is zero by convention exactly
    when that op is; an op in neither :data:`HANDLERS` nor :data:`ZERO_BY_CONVENTION`, in-place or
    not, is ``"uncounted"`` (reported, never dropped in silence). Dunder names (``__and__``) are
    not in-place variants.
    """
    inplace = name.endswith("_") and not name.endswith("__")
    base = name[:-1] if inplace else name
    if base in HANDLERS:
        return "counted", base
    if name in ZERO_BY_CONVENTION or base in ZERO_BY_CONVENTION:
        return "zero", base
    return "uncounted", name


def count_params(model: nn.Module) -> tuple[int, int]:
    """All parameters (frozen included) and the trainable ones."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def _scopes(model: nn.Module) -> dict[str, nn.Module]:
    scopes: dict[str, nn.Module] = {}
    for name in ("stem", "head"):
        if isinstance(getattr(model, name, None), nn.Module):
            scopes[name] = getattr(model, name)
    stages = getattr(model, "stages", None)
    if isinstance(stages, nn.ModuleList | nn.Sequential):
        for i, stage in enumerate(stages):
            scopes[f"stages.{i}"] = stage
    return scopes


def count_traced(
    model: nn.Module, inputs: torch.Tensor | tuple[int, ...], *, train: bool = False, warn: bool = True
) -> TracedCounts:
    """Run one forward pass of ``model`` and count its MACs (fvcore's unit) and parameters.

    ``inputs`` is a tensor or a shape (e.g. ``(1, 3, 224, 224)``; random data is used). The model
    runs in eval mode unless ``train``; its mode is restored afterwards.
    """
    x = torch.randn(inputs) if isinstance(inputs, tuple) else inputs
    was_training = model.training
    model.train(train)
    counter = _Counter()
    handles = []
    for name, module in _scopes(model).items():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=name: setattr(counter, "scope", n)))
        handles.append(module.register_forward_hook(lambda m, a, o: setattr(counter, "scope", "other")))
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params, trainable = count_params(model)
    uncounted = dict(counter.uncounted)
    if uncounted and warn:
        ops = ", ".join(f"{k} (x{v})" for k, v in sorted(uncounted.items()))
        warnings.warn(
            f"ops that may carry compute ran but were not counted: {ops}", UncountedOpsWarning, stacklevel=2
        )
    by_scope = defaultdict(int, counter.by_scope)
    return TracedCounts(
        params=params,
        trainable_params=trainable,
        macs=sum(counter.by_op.values()),
        activations=counter.activations,
        by_scope=dict(by_scope),
        by_op=dict(counter.by_op),
        uncounted=uncounted,
    )
