"""archsearch: neural architecture search and hybrid design for vision backbones.

>>> import archsearch
>>> spec = archsearch.load_spec("cvt-13")          # a zoo name or a YAML path
>>> model = archsearch.build(spec)                 # torch.nn.Module
>>> model = archsearch.create_model("resnet-50", num_classes=10, input_size=160)
"""

from . import _openmp  # noqa: F401  # first: sets OMP_WAIT_POLICY before torch is imported
from .compiler import ArchNet, build, create_model
from .errors import Issue, SearchError, SpecError
from .ops import fused_attention, set_fused_attention
from .spec import NormalizedSpec, Spec, load_spec, normalize, zoo_names

__version__ = "0.1.0"

__all__ = [
    "ArchNet",
    "Issue",
    "NormalizedSpec",
    "SearchError",
    "Spec",
    "SpecError",
    "__version__",
    "build",
    "create_model",
    "fused_attention",
    "load_spec",
    "normalize",
    "set_fused_attention",
    "zoo_names",
]
