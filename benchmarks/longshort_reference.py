"""Zoo ``transformer-ls-m`` against the official Transformer-LS ImageNet model (measuring only).

Builds the official ViL-LS-Medium (``MsViT`` of NVIDIA/transformer-ls ``imagenet/models``, arch of
``launch/train/train_medium_224.sh``) from an exported tree of that repository, in the reference
virtual environment (timm, fvcore; no archsearch): perturbs its weights, runs an image, counts its
parameters and its fvcore MACs (attention matmuls included). Then, here, builds the zoo model,
copies the official weights in by name and reports the parameter counts, the max abs difference of
the logits and the traced MACs. Not imported by the package or the tests; needs no network.

    python benchmarks/longshort_reference.py --tree /tmp/transformer-ls \
        --ref-python /tmp/archsearch-ref/bin/python

The official code is loaded as it is (its ``models/__init__.py``, which imports torchvision, is
skipped by registering ``models`` as a bare package); nothing of it is copied into archsearch.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported inside functions: zoo_speed's workers import this file
    import torch

ARCH = (
    "l1,h3,d96,n1,s1,g1,p4,f7,a0,r8_l2,h3,d192,n4,s1,g1,p2,f7,a0,r8_"
    "l3,h6,d384,n16,s0,g1,p2,f7,a0,r8_l4,h12,d768,n1,s0,g0,p2,f7,a0,r8"
)
DEPTHS = (1, 4, 16, 1)


def build_official(tree: str) -> torch.nn.Module:
    """The official ViL-LS-Medium (``MsViT``, 1000 classes, 224 px) from the exported tree, in eval
    mode; needs timm (the official code imports its layers). Its tensors register in the zoo
    model's order, so ``zoo_speed.py`` pairs them by position."""
    import importlib
    import types

    pkg = types.ModuleType("tls_models")
    pkg.__path__ = [str(Path(tree) / "imagenet" / "models")]
    sys.modules["tls_models"] = pkg
    msvit = importlib.import_module("tls_models.msvit")
    return msvit.MsViT(
        arch=ARCH,
        img_size=224,
        num_classes=1000,
        drop_rate=0.0,
        drop_path_rate=0.0,
        norm_embed=True,
        avg_pool=False,
        sharew=True,
        attn_type="ls",
        share_kv=True,
        only_glo=False,
        sw_exact=0,
        ln_eps=1e-6,
        mode=0,
    ).eval()


def reference_side(tree: str, out: str, seed: int) -> None:
    """In the reference venv: build, perturb, run and count the official model; save to ``out``."""
    import torch

    torch.set_num_threads(1)
    model = build_official(tree)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # every weight matters, LayerNorms and tables too
            if re.search(r"norm[^.]*\.weight$|dual_ln_\w+\.weight$", name):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        x = torch.randn(2, 3, 224, 224, generator=gen)
        y = model(x)
    from fvcore.nn import FlopCountAnalysis

    flops = FlopCountAnalysis(model, x[:1])
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    params = sum(p.numel() for p in model.parameters())
    state = {k: v for k, v in model.state_dict().items() if "relative_position_index" not in k}
    torch.save({"state": state, "x": x, "y": y, "params": params, "fvcore_macs": flops.total()}, out)


def our_key(key: str) -> str:
    """The zoo model's name of an official parameter."""
    m = re.fullmatch(r"layer(\d)\.(\d+)\.(.+)", key)
    if m is None:
        return {"norm.weight": "head.norm.weight", "norm.bias": "head.norm.bias"}.get(
            key, key.replace("head.", "head.fc.")
        )
    stage, index, rest = int(m[1]) - 1, int(m[2]), m[3]
    if index == 0:  # PatchEmbed: conv, LayerNorm, class token
        rest = {"proj.weight": "embed.0.weight", "proj.bias": "embed.0.bias"}.get(rest, rest)
        rest = rest.replace("norm_embed.", "embed.1.")
        return f"stages.{stage}.{rest}"
    block, mlp = divmod(index - 1, 2)  # AttnBlock, MlpBlock alternate
    rest = rest.replace("norm.", "norm2." if mlp else "norm1.", 1) if rest.startswith("norm.") else rest
    return f"stages.{stage}.blocks.{block}.{rest}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default="/tmp/transformer-ls", help="exported NVIDIA/transformer-ls tree")
    parser.add_argument("--ref-python", default="/tmp/archsearch-ref/bin/python")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ref-side", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ref_side:
        reference_side(args.tree, args.ref_side, args.seed)
        return
    import torch

    import archsearch
    from archsearch.cost import analytic_costs, count_traced

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "ref.pt")
        cmd = [args.ref_python, __file__, "--tree", args.tree, "--seed", str(args.seed), "--ref-side", out]
        subprocess.run(cmd, check=True)
        ref = torch.load(out)
    model = archsearch.create_model("transformer-ls-m").eval()
    ours = model.state_dict()
    state = {our_key(k): v for k, v in ref["state"].items()}
    missing = sorted(set(ours) - set(state) - {k for k in ours if k.endswith("relative_position_index")})
    unexpected = sorted(set(state) - set(ours))
    assert not missing and not unexpected, (missing, unexpected)
    model.load_state_dict(state, strict=False)
    with torch.no_grad():
        y = model(ref["x"])
    traced = count_traced(model, (1, 3, 224, 224))
    result = {
        "params_official": ref["params"],
        "params_ours": sum(p.numel() for p in model.parameters()),
        "max_abs_diff": float((y - ref["y"]).abs().max()),
        "logit_scale": float(ref["y"].abs().max()),
        "fvcore_gmacs_official": ref["fvcore_macs"] / 1e9,
        "traced_gmacs_ours": traced.macs / 1e9,
        "analytic_gmacs_ours": analytic_costs(model.plan).macs / 1e9,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
