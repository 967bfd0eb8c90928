"""Measure the zoo's ``rednet-50`` against the official RedNet-50 (d-li14/involution; measuring only).

The official classification code (``cls/mmcls/models/backbones/rednet.py`` with the pure-PyTorch
``cls/mmcls/models/utils/involution_naive.py``) is built with plain torch: the few mmcv / mmcls
names it imports are stood in for by a small shim here (``ConvModule`` and the layer builders with
mmcv's semantics), never copied into archsearch. The classifier around the backbone is mmcls'
``ImageClassifier`` of ``configs/_base_/models/rednet50.py``: global average pooling and a Linear
head to 1000 classes.

Two processes, because the reference virtual environment (torch, timm, fvcore) has no archsearch
and archsearch's has no fvcore::

    git --git-dir=<mirror of d-li14/involution> archive HEAD | tar -x -C /tmp/involution
    python benchmarks/_official_rednet.py --checkout /tmp/involution \
        --ref-python /tmp/archsearch-ref/bin/python

The reference process (``--phase ref``) builds the official model, counts its parameters and its
fvcore MACs at 224 px, batch 1 (fvcore's default, which drops the involution's multiply-and-sum as
unsupported ops, and "everything counted": the sum over each kxk neighbourhood counted one MAC per
summed element, as our batched matrix product counts it), perturbs its weights (seeded) and saves
them with an input batch and the official output. This process then copies those weights into ours
in registration order and reports the largest absolute difference of the outputs, and our traced
and analytic MACs. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

from _zoo_reference import EQUIV_BATCH, SEED, pair_state_dicts, perturb_

HERE = Path(__file__).resolve().parent
_RELU = {"type": "ReLU"}  # mmcv ConvModule's default activation


# --------------------------------------------------------------------------- the mmcv / mmcls shim


def _shim(checkout: Path) -> types.ModuleType:
    """Stand-ins for the mmcv / mmcls names ``rednet.py`` and ``involution_naive.py`` import, then
    the official ``rednet`` module itself (its CUDA involution replaced by the naive one, which has
    the same parameters)."""
    from torch import nn

    def build_conv_layer(cfg: Any, *args: Any, **kwargs: Any) -> nn.Module:
        assert cfg is None
        return nn.Conv2d(*args, **kwargs)

    def build_norm_layer(
        cfg: dict[str, Any], channels: int, postfix: int | str = ""
    ) -> tuple[str, nn.Module]:
        assert cfg["type"] == "BN"
        norm = nn.BatchNorm2d(channels)
        for p in norm.parameters():
            p.requires_grad = cfg.get("requires_grad", True)
        return f"bn{postfix}", norm

    class ConvModule(nn.Module):
        """mmcv's ConvModule, order conv -> norm -> act; ``bias='auto'``: a bias without a norm."""

        def __init__(
            self,
            in_channels: int,
            out_channels: int,
            kernel_size: int,
            stride: int = 1,
            padding: int = 0,
            dilation: int = 1,
            groups: int = 1,
            bias: Any = "auto",
            conv_cfg: Any = None,
            norm_cfg: Any = None,
            act_cfg: Any = _RELU,
            inplace: bool = True,
            **_: Any,
        ):
            super().__init__()
            bias = norm_cfg is None if bias == "auto" else bias
            self.conv = build_conv_layer(
                conv_cfg, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias
            )
            self.norm_name = None
            if norm_cfg is not None:
                self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
                self.add_module(self.norm_name, norm)
            self.activate = nn.ReLU(inplace=inplace) if act_cfg is not None else None

        def forward(self, x: Any) -> Any:
            x = self.conv(x)
            if self.norm_name is not None:
                x = getattr(self, self.norm_name)(x)
            return self.activate(x) if self.activate is not None else x

    class Registry:
        def register_module(self) -> Any:
            return lambda cls: cls

    def module(name: str, **attrs: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__path__ = []  # a package: relative imports below it resolve
        mod.__dict__.update(attrs)
        sys.modules[name] = mod
        return mod

    noop = lambda *a, **k: None  # noqa: E731
    module("mmcv")
    module(
        "mmcv.cnn",
        ConvModule=ConvModule,
        build_conv_layer=build_conv_layer,
        build_norm_layer=build_norm_layer,
    )
    sys.modules["mmcv.cnn"].__dict__.update(constant_init=noop, kaiming_init=noop)
    module("mmcv.utils")
    module("mmcv.utils.parrots_wrapper", _BatchNorm=nn.modules.batchnorm._BatchNorm)
    module("refmmcls")
    module("refmmcls.models")
    module("refmmcls.models.builder", BACKBONES=Registry())
    module("refmmcls.models.utils")
    module("refmmcls.models.backbones")

    class BaseBackbone(nn.Module):
        def init_weights(self, pretrained: Any = None) -> None:
            pass

    module("refmmcls.models.backbones.base_backbone", BaseBackbone=BaseBackbone)
    src = checkout / "cls" / "mmcls" / "models"
    naive = _load("refmmcls.models.utils.involution_naive", src / "utils" / "involution_naive.py")
    sys.modules["refmmcls.models.utils.involution_cuda"] = naive
    return _load("refmmcls.models.backbones.rednet", src / "backbones" / "rednet.py")


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def build_official(checkout: Path, depth: int = 50, num_classes: int = 1000) -> Any:
    """mmcls' ``ImageClassifier`` of ``rednet50.py``: RedNet backbone, global average pooling,
    Linear head (registered in that order)."""
    import torch
    from torch import nn

    rednet = _shim(checkout)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = rednet.RedNet(depth=depth, num_stages=4, out_indices=(3,), style="pytorch")
            self.pool = nn.AdaptiveAvgPool2d((1, 1))  # mmcls GlobalAveragePooling
            self.fc = nn.Linear(2048, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.pool(self.backbone(x)).flatten(1))

    return Classifier()


# --------------------------------------------------------------------------- the two phases


def ref_phase(checkout: Path, out: Path) -> None:
    import torch
    from fvcore.nn import FlopCountAnalysis

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    model = build_official(checkout).eval()
    params = sum(p.numel() for p in model.parameters())
    x1 = torch.randn(1, 3, 224, 224)
    default = FlopCountAnalysis(model, x1).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    # "everything counted": each summed element of the kxk neighbourhoods is one multiply-add
    full = FlopCountAnalysis(model, x1).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    full.set_op_handle("aten::sum", lambda inputs, outputs: _numel(inputs[0]))
    macs_default, macs_full = default.total(), full.total()
    unsupported = dict(full.unsupported_ops())
    perturb_(model, SEED)
    x = torch.randn(EQUIV_BATCH, 3, 224, 224, generator=torch.Generator().manual_seed(SEED + 1))
    with torch.no_grad():
        y = model(x)
    torch.save(
        {
            "state": model.state_dict(),
            "x": x,
            "y": y,
            "params": params,
            "fvcore_default": macs_default,
            "fvcore_full": macs_full,
            "fvcore_unsupported": unsupported,
            "involution_sums": full.by_operator().get("sum", 0),
        },
        out,
    )


def _numel(value: Any) -> int:
    import math

    from fvcore.nn.jit_handles import get_shape

    return math.prod(get_shape(value))


def ours_phase(ref: Path) -> dict[str, Any]:
    import torch

    import archsearch
    from archsearch.cost import analytic_costs, count_traced

    torch.set_num_threads(1)
    saved = torch.load(ref)
    model = archsearch.create_model("rednet-50")
    state, why = pair_state_dicts(saved["state"], model.state_dict())
    if state is None:
        raise SystemExit(f"the official weights do not pair with ours: {why}")
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        y = model(saved["x"])
    traced = count_traced(model, (1, 3, 224, 224))
    analytic = analytic_costs(model.plan)
    return {
        "official_params": saved["params"],
        "our_params": traced.params,
        "max_abs_diff": float((y - saved["y"]).abs().max()),
        "output_scale": float(saved["y"].abs().max()),
        "fvcore_default_macs": saved["fvcore_default"],
        "fvcore_full_macs": saved["fvcore_full"],
        "fvcore_involution_sum_macs": saved["involution_sums"],
        "fvcore_unsupported_ops": saved["fvcore_unsupported"],
        "our_traced_macs": traced.macs,
        "our_analytic_macs": analytic.macs,
        "traced_vs_fvcore_full": traced.macs / saved["fvcore_full"] - 1,
        "uncounted": traced.uncounted,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", type=Path, required=True, help="work tree of d-li14/involution")
    p.add_argument(
        "--ref-python", default="/tmp/archsearch-ref/bin/python", help="python with torch + fvcore"
    )
    p.add_argument("--phase", choices=["both", "ref"], default="both")
    p.add_argument("--out", type=Path, default=Path("/tmp/rednet50_official.pt"), help="the reference's file")
    args = p.parse_args()
    if args.phase == "ref":
        ref_phase(args.checkout, args.out)
        return
    cmd = [
        args.ref_python,
        __file__,
        "--phase",
        "ref",
        "--checkout",
        str(args.checkout),
        "--out",
        str(args.out),
    ]
    subprocess.run(cmd, check=True, cwd=HERE)
    print(json.dumps(ours_phase(args.out), indent=1))


if __name__ == "__main__":
    main()
