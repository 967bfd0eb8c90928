"""archsearch: neural architecture search and hybrid design for vision backbones.

>>> import archsearch
>>> spec = archsearch.load_spec("cvt-13")          # a zoo name or a YAML path
>>> model = archsearch.build(spec)                 # torch.nn.Module
>>> model = archsearch.create_model("resnet-50", num_classes=10, input_size=160)
>>> archsearch.list_models("cvt*")                 # ['cvt-13', 'cvt-21']
>>> archsearch.export("deit-ti", "onnx")           # deit-ti.onnx, checked with onnxruntime
"""

from .compiler import ArchNet, build, create_model
from .deploy import ExportResult, export, load_weights
from .errors import ExportError, Issue, SearchError, SpecError
from .ops import fused_attention, set_fused_attention
from .spec import NormalizedSpec, Spec, list_models, load_spec, normalize, zoo_names

__version__ = "0.1.0"

__all__ = [
    "ArchNet",
    "ExportError",
    "ExportResult",
    "Issue",
    "NormalizedSpec",
    "SearchError",
    "Spec",
    "SpecError",
    "__version__",
    "build",
    "create_model",
    "export",
    "fused_attention",
    "list_models",
    "load_spec",
    "load_weights",
    "normalize",
    "set_fused_attention",
    "zoo_names",
]
