"""The reference side of ``zoo_speed.py``: which implementation each zoo model is compared with, how
both are built, and how the reference's weights are perturbed and paired with ours.

Stdlib and torch only at import time: the reference virtual environment (timm, official CvT, no
archsearch) imports this module too.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and archsearch are imported inside functions: the reference venv runs this file too
    import torch
    from torch import nn


# zoo name -> reference: "timm:<model name>", "cvt:<depth,depth,depth>" (official microsoft/CvT, loaded
# by load_cvt.py from --cvt-ref), or None when no reference implementation exists.
REFERENCES: dict[str, str | None] = {
    "resnet-50": "timm:resnet50",
    "bot-50": None,
    "vit-b16": "timm:vit_base_patch16_224",
    "deit-s": "timm:deit_small_patch16_224",
    "deit-ti": "timm:deit_tiny_patch16_224",
    "cvt-13": "cvt:1,2,10",
    "cvt-21": "cvt:1,4,16",
    "t2t-vit-t-14": None,  # yitu-opensource/T2T-ViT: not in timm (equivalence checked in its tests' notes)
    "pvt-v2-b1": "timm:pvt_v2_b1",
    "swin-t": "timm:swin_tiny_patch4_window7_224",
    "convnext-t": "timm:convnext_tiny",
    "mobilevit-s": "timm:mobilevit_s",
    "mobilevit-xxs": "timm:mobilevit_xxs",
    "regnety-016": "timm:regnety_016",
    "efficientnet-b0": "timm:efficientnet_b0",
}

EQUIV_BATCH = 2
SEED = 0


def pair_state_dicts(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor] | None, str]:
    """Pair the tensors of ``source`` with those of ``target`` in registration order.

    Floating-point parameters and buffers are paired one to one in the order the two state dicts list
    them (module registration order), and every pair must have the same shape. Integer buffers
    (BatchNorm's ``num_batches_tracked``, relative-position index tables) are not weights: they are
    left out of the pairing and ``target`` keeps its own.

    Returns ``(new_target_state, "")`` on success and ``(None, reason)`` when the two do not pair.
    """
    src = [(k, v) for k, v in source.items() if v.is_floating_point()]
    dst = [(k, v) for k, v in target.items() if v.is_floating_point()]
    if len(src) != len(dst):
        return None, f"{len(src)} reference tensors vs {len(dst)} ours"
    out = dict(target)
    for i, ((sk, sv), (dk, dv)) in enumerate(zip(src, dst, strict=True)):
        if sv.shape != dv.shape:
            return None, f"tensor {i}: ref {sk} {tuple(sv.shape)} vs ours {dk} {tuple(dv.shape)}"
        out[dk] = sv.detach().clone().to(dv.dtype)
    return out, ""


def perturb_(model: nn.Module, seed: int) -> None:
    """Give every floating-point tensor of ``model`` non-trivial values, keeping BN variances positive."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            else:
                t.add_(torch.randn(t.shape, generator=gen) * 0.02)


def build_ours(name: str) -> tuple[nn.Module, tuple[int, int]]:
    """Our zoo model and its native input (height, width)."""
    import archsearch

    model = archsearch.create_model(name)
    shape = model.plan.input_shape
    return model, (shape.height, shape.width)


def build_ref(name: str, cvt_dir: str) -> tuple[nn.Module, tuple[int, int]]:
    """The reference implementation of zoo model ``name`` (see :data:`REFERENCES`) and its input size."""
    target = REFERENCES.get(name)
    if target is None:
        raise ValueError(f"no reference implementation for {name!r}")
    kind, _, arg = target.partition(":")
    if kind == "timm":
        import timm

        model = timm.create_model(arg, pretrained=False)
        _, h, w = model.pretrained_cfg.get("input_size", (3, 224, 224))
        return model, (int(h), int(w))
    if kind == "cvt":
        sys.path.insert(0, cvt_dir)
        import load_cvt

        depths = tuple(int(d) for d in arg.split(","))
        return load_cvt.build(depths=depths, num_classes=1000), (224, 224)
    raise ValueError(f"unknown reference kind {kind!r} in {target!r}")
