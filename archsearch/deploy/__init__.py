"""Models out of archsearch: ONNX, TorchScript or safetensors files, each checked against PyTorch.

>>> from archsearch.deploy import export
>>> result = export("deit-ti", "onnx", "deit-ti.onnx", num_classes=10)
>>> result.max_abs_diff            # onnxruntime's logits vs PyTorch's, at batch 1 and 2
"""

from ._create import create_model
from ._export import DEFAULT_TOLERANCE, FORMATS, SUFFIXES, ExportResult, export
from ._weights import load_weights, read_state_dict, save_weights

__all__ = [
    "DEFAULT_TOLERANCE",
    "FORMATS",
    "SUFFIXES",
    "ExportResult",
    "create_model",
    "export",
    "load_weights",
    "read_state_dict",
    "save_weights",
]
