"""archsearch: neural architecture search and hybrid design for vision backbones.

>>> import archsearch
>>> spec = archsearch.load_spec("cvt-13")          # a zoo name or a YAML path
>>> model = archsearch.build(spec)                 # torch.nn.Module
>>> model = archsearch.create_model("resnet-50", num_classes=10, input_size=160)
>>> archsearch.load_weights(archsearch.create_model("deit-ti", input_size=384), "deit-ti-224.pt")
>>> archsearch.list_models("cvt*")                 # ['cvt-13', 'cvt-21']
>>> archsearch.export("deit-ti", "onnx")           # deit-ti.onnx, checked with onnxruntime
"""

from . import _openmp  # noqa: F401  # first: sets OMP_WAIT_POLICY before torch is imported
from .compiler import ArchNet, build, resample_state_dict
from .deploy import ExportResult, create_model, export, load_weights
from .errors import ExportError, InputSizeError, Issue, SearchError, SpecError
from .ops import fused_attention, set_fused_attention
from .spec import NormalizedSpec, Spec, list_models, load_spec, normalize, zoo_names

__version__ = "0.1.0"

__all__ = [
    "ArchNet",
    "ExportError",
    "ExportResult",
    "InputSizeError",
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
    "resample_state_dict",
    "set_fused_attention",
    "zoo_names",
]
