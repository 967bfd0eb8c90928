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
# by load_cvt.py from --cvt-ref), "tls:<size>" (official NVIDIA/transformer-ls), "rednet:<depth>"
# (official d-li14/involution), or None when no reference implementation exists.
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
    "resnet-50d": "timm:resnet50d",
    "botnet-26t": "timm:botnet26t_256",
    "poolformer-s12": "timm:poolformer_s12",
    "deit-b-distilled": "timm:deit_base_distilled_patch16_224",
    "lambda-resnet-26t": "timm:lambda_resnet26t",
    "halonet-26t": "timm:halonet26t",
    "twins-svt-s": "timm:twins_svt_small",
    "convit-ti": "timm:convit_tiny",
    "vit-b16-r50": "timm:vit_base_r50_s16_224",
    # official NVIDIA/transformer-ls ViL-LS-Medium, built by longshort_reference.py from the tree exported
    # at $ARCHSEARCH_TLS_TREE (default /tmp/transformer-ls); its tensors register in our order
    "transformer-ls-m": "tls:medium",
    # official d-li14/involution RedNet-50 (mmcls backbone + Linear head), built by _official_rednet.py
    # from the tree exported at $ARCHSEARCH_REDNET_TREE (default /tmp/involution)
    "rednet-50": "rednet:50",
    "mvitv2-t": "timm:mvitv2_tiny",
}

# Reference models whose blocks register their shortcut first and their attention's relative
# position tables after its qkv conv (timm byobnet.py); ours register the shortcut last (as timm's
# resnet.py does) and the tables first: their state dicts are reordered before pairing.
SHORTCUT_FIRST = ("timm:botnet26t_256", "timm:lambda_resnet26t", "timm:halonet26t")

# Reference models that list all patch embeddings, then all blocks, then all PEGs (timm twins.py);
# ours lists each stage's embedding, its blocks, the PEG inside the block it follows.
PEG_AFTER_FIRST_BLOCK = ("timm:twins_svt_small",)

# Reference models whose class token joins late (timm convit.py, after the GPSA blocks) but is
# registered first: it moves in front of the first block that sees it, as in ours (a later stage).
CLASS_TOKEN_BEFORE = {"timm:convit_tiny": "blocks.10."}
# timm ViT hybrids (vision_transformer_hybrid.py) register the class token and position table on the
# model, in front of the ResNet v2 backbone, and each backbone block's downsample first; ours
# register them in the token stage, just before its 1x1 projection, and the shortcut last.
VIT_HYBRID = ("timm:vit_base_r50_s16_224",)

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


def reference_state(name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """The reference model's state dict in the order ours registers the same tensors: for the models
    of :data:`SHORTCUT_FIRST`, each block's ``shortcut.*`` tensors move behind the block's others
    and its ``pos_embed.*`` tables in front of its attention's ``qkv``."""
    state = model.state_dict()
    if REFERENCES.get(name) in VIT_HYBRID:
        return {k: state[k] for k in _vit_hybrid_order(list(state))}
    if REFERENCES.get(name) in PEG_AFTER_FIRST_BLOCK:
        return _stagewise(state)
    before = CLASS_TOKEN_BEFORE.get(REFERENCES.get(name) or "")
    if before is not None:
        keys = [k for k in state if k != "cls_token"]
        at = next(i for i, k in enumerate(keys) if k.startswith(before))
        return {k: state[k] for k in [*keys[:at], "cls_token", *keys[at:]]}
    if REFERENCES.get(name) not in SHORTCUT_FIRST:
        return state
    blocks: dict[str, list[str]] = {}  # block prefix -> its keys
    for key in state:
        prefix = key.split(".shortcut.")[0] if ".shortcut." in key else ".".join(key.split(".")[:3])
        blocks.setdefault(prefix, []).append(key)

    def rank(keys: list[str], i: int) -> tuple[int, float]:
        key = keys[i]
        qkv = [j for j, k in enumerate(keys) if k.startswith(key.split(".pos_embed.")[0] + ".qkv")]
        if ".pos_embed." in key and qkv:  # just before the qkv conv of the same attention (BoTNet)
            return 0, qkv[0] - 0.5
        return int(".shortcut." in key), i

    ordered = [
        keys[i] for keys in blocks.values() for i in sorted(range(len(keys)), key=lambda i: rank(keys, i))
    ]
    return {k: state[k] for k in ordered}


def _stagewise(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Twins' state dict in our order: per stage ``k`` its patch embedding, block 0, its PEG
    (``pos_block.k``), the other blocks; then the rest (final norm, head)."""
    stages = sorted({int(k.split(".")[1]) for k in state if k.startswith("patch_embeds.")})

    def part(prefix: str) -> list[str]:
        return [k for k in state if k.startswith(prefix)]

    ordered: list[str] = []
    for k in stages:
        blocks = sorted({int(key.split(".")[2]) for key in part(f"blocks.{k}.")})
        ordered += part(f"patch_embeds.{k}.") + part(f"blocks.{k}.{blocks[0]}.") + part(f"pos_block.{k}.")
        for j in blocks[1:]:
            ordered += part(f"blocks.{k}.{j}.")
    ordered += [k for k in state if k not in set(ordered)]
    return {k: state[k] for k in ordered}


def _vit_hybrid_order(keys: list[str]) -> list[str]:
    """The keys of a timm ViT hybrid in our registration order: ``cls_token`` and ``pos_embed`` just
    before ``patch_embed.proj``, and each ResNet v2 block's ``downsample.*`` behind its others."""
    tokens = [k for k in keys if k in ("cls_token", "pos_embed")]
    groups: list[list[str]] = []  # runs of keys of one block (or of one other part)
    for key in keys:
        if key in tokens:
            continue
        if key.startswith("patch_embed.proj.") and tokens:
            groups.append(tokens)
            tokens = []
        block = ".".join(key.split(".")[:6]) if key.startswith("patch_embed.backbone.stages.") else key
        if groups and groups[-1][0].startswith(block + ".") and block != key:
            groups[-1].append(key)
        else:
            groups.append([key])
    return [k for group in groups for k in sorted(group, key=lambda k: ".downsample." in k)]


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
    if kind == "tls":
        import os

        from longshort_reference import build_official

        return build_official(os.environ.get("ARCHSEARCH_TLS_TREE", "/tmp/transformer-ls")), (224, 224)
    if kind == "rednet":
        import os
        from pathlib import Path

        from _official_rednet import build_official as build_rednet

        tree = Path(os.environ.get("ARCHSEARCH_REDNET_TREE", "/tmp/involution"))
        return build_rednet(tree, depth=int(arg)), (224, 224)
    raise ValueError(f"unknown reference kind {kind!r} in {target!r}")
