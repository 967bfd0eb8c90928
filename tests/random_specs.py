"""Random hybrid specs for property tests: every family, mixer, embedding and stride varied."""

from __future__ import annotations

import random
from typing import Any

import archsearch
from archsearch import SpecError


def _stage(rng: random.Random, first: bool) -> dict[str, Any]:
    mixer_kind = rng.choice(
        [
            "conv",
            "mhsa",
            "attention",
            "attention",
            "dwconv",
            "window",
            "mbconv",
            "mobilevit",
            "pool",
            "lambda",
            "halo",
        ]
    )
    heads = rng.choice([1, 2, 4])
    dim = heads * rng.choice([4, 8, 12, 16])
    depth = rng.randint(1, 3)
    stage: dict[str, Any] = {"dim": dim, "depth": depth}
    embeds = ["conv", "patch", "none", "t2t", "merge", "mbconv"] + (
        ["block"] if mixer_kind in ("conv", "mhsa", "mbconv", "lambda", "halo") else []
    )
    kind = rng.choice(embeds)
    if kind == "conv":
        kernel = rng.choice([1, 2, 3, 5, 7])
        embed: dict[str, Any] = {"kind": "conv", "kernel": kernel, "stride": rng.choice([1, 2, 2, 3, 4])}
        if rng.random() < 0.4:
            embed["padding"] = rng.randint(0, kernel // 2)
        embed["norm"] = rng.choice(["layer", "batch", "none"])
        if embed["norm"] == "layer" and rng.random() < 0.3:
            embed["norm_eps"] = 1e-5
    elif kind == "patch":
        embed = {"kind": "patch", "stride": rng.choice([1, 2, 4]), "norm": rng.choice(["layer", "none"])}
    elif kind == "t2t":  # the first soft split strides 2 to keep the token transformers small
        splits = rng.randint(1, 3)
        kernels = [rng.choice([1, 2, 3, 5]) for _ in range(splits)]
        embed = {"kind": "t2t", "kernels": kernels, "strides": [2] + [rng.choice([1, 2])] * (splits - 1)}
        if rng.random() < 0.4:
            embed["paddings"] = [rng.randint(0, k // 2) for k in kernels]
        embed.update(token_dim=rng.choice([4, 8, 16]), heads=rng.choice([1, 2]), mlp_ratio=rng.choice([1, 2]))
        embed["qkv_bias"] = rng.random() < 0.5
    elif kind == "merge":  # fails (SpecError, retried) on a map under 2x2
        embed = {"kind": "merge"}
    elif kind == "block":
        embed = {"kind": "block", "stride": rng.choice([1, 2])}
        if mixer_kind in ("conv", "mhsa", "lambda", "halo") and rng.random() < 0.4:  # ResNet-D's shortcut
            embed["shortcut"] = "avg"
    elif kind == "mbconv":
        embed = {"kind": "mbconv", "stride": rng.choice([1, 2]), "expansion": rng.choice([1, 2, 4])}
        embed["kernel"] = rng.choice([3, 5])
    else:
        embed = {"kind": "none"}
    if embed.get("norm", "none") != "none" and rng.random() < 0.3:
        embed["norm_first"] = True
    stage["embed"] = embed
    if mixer_kind == "conv":
        stage["mixer"] = {"kind": "conv", "kernel": rng.choice([1, 3, 5]), "groups": rng.choice([1, 2])}
        stage["expansion"] = rng.choice([1, 2, 4])
        if rng.random() < 0.3:  # RegNetY's squeeze-excitation (tiny ratios: an error, retried)
            stage["mixer"]["se"] = rng.choice([0.25, 0.5, 0.01])
    elif mixer_kind == "mbconv":
        stage["mixer"] = {"kind": "mbconv", "kernel": rng.choice([1, 3, 5])}
        stage["expansion"] = rng.choice([1, 2, 4, 6])
        if rng.random() < 0.3:  # EfficientNet's squeeze-excitation
            stage["mixer"]["se"] = rng.choice([0.25, 0.5])
        if rng.random() < 0.2:  # a depthwise-separable conv (no expand conv)
            stage["mixer"]["expand_conv"] = False
            stage["expansion"] = 1
        stage["act"] = rng.choice(["silu", "relu"])
    elif mixer_kind == "mobilevit":
        stage["mixer"] = {
            "kind": "mobilevit",
            "transformer_dim": heads * rng.choice([4, 8]),
            "heads": heads,
            "patch": rng.choice([1, 2, 2, 3]),  # 3 rarely divides the map: the resized path
            "kernel": rng.choice([1, 3]),
            "qkv_bias": rng.random() < 0.7,
        }
        ratios = [rng.choice([1, 2, 3.5]) for _ in range(depth)]
        stage["mlp_ratio"] = ratios if rng.random() < 0.5 else ratios[0]
    elif mixer_kind == "mhsa":
        stage["mixer"] = {"kind": "mhsa", "heads": heads, "qkv_bias": rng.random() < 0.5}
        stage["expansion"] = 1
        stage["pos_embed"] = rng.choice(["relative", "none"])
    elif mixer_kind == "dwconv":
        stage["mixer"] = {
            "kind": "dwconv",
            "kernel": rng.choice([1, 3, 5, 7]),
            "layer_scale": rng.choice([1e-6, 0.5, 0.0, None]),
        }
        ratios = [rng.choice([1, 2, 3.5, 4]) for _ in range(depth)]
        stage["mlp_ratio"] = ratios if rng.random() < 0.5 else ratios[0]
        stage["act"] = rng.choice(["gelu", "relu", "silu"])
    elif mixer_kind == "lambda":  # LambdaNetworks (a stride over 2 is an error, retried)
        stage["mixer"] = {
            "kind": "lambda",
            "heads": heads,
            "key_dim": rng.choice([4, 8]),
            "radius": rng.choice([1, 3, 5]),
        }
        stage["mixer"]["qkv_bias"] = rng.random() < 0.3
        stage["expansion"] = 1
    elif mixer_kind == "halo":  # HaloNet (a map not in blocks is an error, retried)
        stage["mixer"] = {
            "kind": "halo",
            "heads": heads,
            "block": rng.choice([1, 2, 4]),
            "halo": rng.choice([0, 1, 2]),
        }
        stage["expansion"] = 1
    elif mixer_kind == "pool":  # PoolFormer
        stage["mixer"] = {
            "kind": "pool",
            "kernel": rng.choice([1, 3, 5]),
            "layer_scale": rng.choice([1e-5, None]),
        }
        stage["mlp_ratio"] = rng.choice([1, 2, 4])
    elif mixer_kind == "window":  # small windows on small maps: shifts, padding and shrinking all occur
        shift = [rng.random() < 0.5 for _ in range(depth)]
        stage["mixer"] = {
            "kind": "window",
            "heads": heads,
            "window": rng.choice([1, 2, 3, 4, 5, 7]),
            "shift": rng.choice([True, False, shift]),
            "qkv_bias": rng.random() < 0.7,
        }
        stage["mlp_ratio"] = rng.choice([1, 2, 3.5, 4])
        stage["pos_embed"] = rng.choice(["relative_bias", "relative_bias", "none", "absolute"])
        stage["act"] = rng.choice(["gelu", "relu"])
    else:
        qkv = rng.choice(["linear", "dw_bn", "avg", "sr"])
        mixer: dict[str, Any] = {
            "kind": "attention",
            "heads": heads,
            "qkv": qkv,
            "scale": rng.choice(["head", "dim"]),
            "qkv_bias": rng.random() < 0.7,
        }
        if qkv != "linear":
            if qkv != "sr":  # sr: the conv's kernel is its stride
                mixer["kernel"] = rng.choice([1, 3, 5])
            elif rng.random() < 0.3:
                mixer["norm_eps"] = 1e-5
            per_block = [rng.choice([1, 2, 3]) for _ in range(depth)]
            mixer["kv_stride"] = per_block if rng.random() < 0.5 else per_block[0]
        if qkv == "dw_bn" and rng.random() < 0.5:
            mixer["q_stride"] = [rng.choice([1, 2])] + [1] * (depth - 1)
        stage["mixer"] = mixer
        ratios = [rng.choice([1, 2, 3.5, 4]) for _ in range(depth)]
        stage["mlp_ratio"] = ratios if rng.random() < 0.5 else ratios[0]
        stage["pos_embed"] = rng.choice(["none", "absolute", "sinusoidal"])
        stage["cls_token"] = rng.random() < 0.3
        if stage["cls_token"] and rng.random() < 0.6:  # DeiT's distillation token
            stage["dist_token"] = True
        stage["act"] = rng.choice(["gelu", "quick_gelu", "relu", "silu"])
        stage["mlp_dwconv"] = rng.random() < 0.3
        stage["norm_out"] = rng.random() < 0.3
    _mixed(stage, mixer_kind, heads, depth)
    return stage


def _mixed(stage: dict[str, Any], mixer_kind: str, heads: int, depth: int) -> None:
    """A per-block mixer list and CPVT's PEG, drawn from the stage's own stream (so the draws
    above, and the specs of earlier seeds without these, stay as they were)."""
    sub = random.Random(repr(sorted(stage.items(), key=str)))
    mixer = stage["mixer"]
    if mixer_kind == "conv" and depth > 1 and sub.random() < 0.4:  # BoTNet-26t's conv, MHSA stage
        stage["mixer"] = [mixer if j % 2 == 0 else {"kind": "mhsa", "heads": heads} for j in range(depth)]
        stage["expansion"] = 1  # as the MHSA stages above (see the report of branch kinds2)
    elif mixer_kind == "attention" and not stage.get("cls_token") and sub.random() < 0.2:  # ConViT
        stage["mixer"] = {"kind": "gpsa", "heads": heads, "qkv_bias": sub.random() < 0.5}
    elif mixer_kind == "attention":
        scalar = not any(isinstance(v, list) for v in mixer.values())
        plain = not stage.get("cls_token") and stage.get("pos_embed") in ("none", "absolute")
        if depth > 1 and scalar and plain and sub.random() < 0.4:  # Twins' LSA, GSA alternation
            window = {"kind": "window", "heads": heads, "window": sub.choice([2, 3, 4]), "shift": False}
            stage["mixer"] = [window if j % 2 == 0 else mixer for j in range(depth)]
        if sub.random() < 0.3:  # CPVT's PEG
            stage["peg"] = sub.randrange(depth)
        _long_short(stage, heads)


def _long_short(stage: dict[str, Any], heads: int) -> None:
    """Transformer-LS attention in place of a plain attention stage, from its own stream (the draws
    above, and the specs of seeds where it is not drawn, stay as they were)."""
    ls = random.Random("longshort-" + repr(sorted(stage.items(), key=str)))
    if not isinstance(stage["mixer"], dict) or stage.get("dist_token") or ls.random() >= 0.25:
        return
    mixer: dict[str, Any] = {"kind": "longshort", "heads": heads, "qkv_bias": ls.random() < 0.7}
    if ls.random() < 0.3:  # ViL's full attention with relative position bias
        mixer["attention"] = "full"
    else:  # segments that tile the map or not (padded); either branch may be off
        mixer.update(window=ls.choice([0, 1, 2, 3, 4, 7]), rank=ls.choice([0, 1, 2, 8]))
        if not (mixer["window"] or mixer["rank"]):
            mixer["rank"] = 1
    stage["mixer"] = mixer
    stage["pos_embed"] = ls.choice(["relative_bias", "relative_bias", "none", "absolute"])


def random_spec_dict(seed: int) -> dict[str, Any]:
    """One random hybrid spec as plain data (it may be invalid; see :func:`random_spec`)."""
    rng = random.Random(seed)
    size = rng.choice([24, 32, 40, 48, 64])
    spec: dict[str, Any] = {"name": f"random-{seed}", "input": {"size": size, "channels": rng.choice([1, 3])}}
    if size >= 48 and rng.random() < 0.2:
        spec["stem"] = {"kind": "resnet", "channels": rng.choice([8, 16])}
    elif rng.random() < 0.15:
        spec["stem"] = {"kind": "conv", "channels": rng.choice([8, 16]), "stride": rng.choice([1, 2])}
    elif rng.random() < 0.1:  # ResNet-D / tiered stems
        channels = [rng.choice([4, 8, 16]) for _ in range(rng.randint(1, 3))]
        spec["stem"] = {"kind": "deep", "channels": channels, "pool": rng.choice(["max", "none"])}
    spec["stages"] = [_stage(rng, i == 0) for i in range(rng.randint(1, 4))]
    last = spec["stages"][-1]
    pool = "cls" if last.get("cls_token") and rng.random() < 0.7 else "avg"
    spec["head"] = {
        "pool": pool,
        "num_classes": rng.choice([0, 3, 10]),
        "norm": rng.choice([True, False, None, "tokens", "pooled"]),
    }
    if pool == "avg" and rng.random() < 0.2:
        spec["head"]["conv"] = rng.choice([8, 24])
    spec["norm_eps"] = rng.choice([1e-5, 1e-6])
    # ResNet v2 options (ViT hybrids), drawn from their own stream so the draws above stay put
    rv2 = random.Random(f"resnetv2-{seed}")
    if spec.get("stem", {}).get("kind") == "resnet" and rv2.random() < 0.5:
        spec["stem"] = {
            "kind": "resnetv2",
            "channels": spec["stem"]["channels"],
            "norm_groups": rv2.choice([1, 4, 8]),
            "weight_std": rv2.choice([None, 1e-8]),
            "padding": rv2.choice(["same", "fixed", "symmetric"]),
        }
    for stage in spec["stages"]:
        mixers = stage["mixer"] if isinstance(stage["mixer"], list) else [stage["mixer"]]
        convs = [m for m in mixers if isinstance(m, dict) and m.get("kind") == "conv"]
        if convs and rv2.random() < 0.3:
            options = {
                "norm": rv2.choice(["batch", "group"]),
                "norm_groups": rv2.choice([1, 2]),  # 2 may not divide the width: retried
                "weight_std": rv2.choice([None, 1e-8, 1e-5]),
                "padding": rv2.choice(["symmetric", "same"]),
            }
            for mixer in convs:  # a mixed stage's conv blocks (per-block mixer list) alike
                mixer.update(options)
    _involutions(spec, random.Random(f"involution-{seed}"))
    # MViT v2 pooling stages in place of some attention stages, from their own stream (the draws
    # above, and the specs of seeds without them, stay as they were)
    mv = random.Random(f"mvit-{seed}")
    for i, stage in enumerate(spec["stages"]):
        mixer = stage["mixer"]
        if isinstance(mixer, dict) and mixer["kind"] == "attention" and mv.random() < 0.35:
            spec["stages"][i] = _pooling_stage(mv, stage, mixer["heads"])
    return spec


def _involutions(spec: dict[str, Any], rng: random.Random) -> None:
    """RedNet's involution in place of some bottleneck conv mixers and of a deep stem's conv, drawn
    from their own stream (so the draws above, and the specs of earlier seeds, stay as they were)."""
    stem = spec.get("stem", {})
    if stem.get("kind") == "deep" and rng.random() < 0.5:
        stem["channels"] = [stem["channels"][0], 16, 16]
        stem["involution"] = [1] if stem["channels"][0] == 16 and rng.random() < 0.5 else [2]
    for stage in spec["stages"]:
        mixer = stage["mixer"]
        # ResNet v2 convs (norm / padding options drawn above) stay: the coverage test needs them
        plain = isinstance(mixer, dict) and mixer.get("kind") == "conv" and "padding" not in mixer
        if plain and rng.random() < 0.4:
            width = stage["dim"] // stage.get("expansion", 4)
            stage["mixer"] = {
                "kind": "involution",
                "kernel": rng.choice([1, 3, 5, 7]),
                "group_channels": rng.choice([g for g in (1, 2, 4, 8, 16) if width % g == 0]),
                "reduction": rng.choice([r for r in (1, 2, 4) if r <= width]),
            }
            if rng.random() < 0.5:  # a downsampling block: the generator's pool, on odd maps too
                stage["embed"] = {"kind": "block", "stride": 2}


def _pooling_stage(rng: random.Random, stage: dict[str, Any], heads: int) -> dict[str, Any]:
    """An MViT v2 stage with the dim, depth and class token of ``stage``: query pooling in the first
    block, a width change under ``embed: none`` (odd strides on maps they divide: an error, retried)."""
    depth = stage["depth"]
    kv = [rng.choice([1, 2, 3]) for _ in range(depth)]
    mixer: dict[str, Any] = {
        "kind": "pooling",
        "heads": heads,
        "kernel": rng.choice([1, 3, 3, 5]),
        "q_stride": rng.choice([1, 2, [2] + [1] * (depth - 1), [3] + [1] * (depth - 1)]),
        "kv_stride": kv if rng.random() < 0.4 else kv[0],
        "qkv_bias": rng.random() < 0.7,
        "residual_pooling": rng.random() < 0.5,
        "rel_pos": rng.random() < 0.6,
    }
    embed = rng.choice([{"kind": "none"}, {"kind": "none"}, {"kind": "conv", "kernel": 3, "stride": 2}])
    out = {"dim": stage["dim"], "depth": depth, "embed": embed, "mixer": mixer}
    out["mlp_ratio"] = rng.choice([1, 2, 4])
    out["pos_embed"] = rng.choice(["none", "none", "absolute"])
    if stage.get("cls_token"):
        out["cls_token"] = True
    return out


def random_spec(seed: int) -> archsearch.Spec:
    """The first valid random spec from ``seed`` onwards (invalid ones must raise SpecError)."""
    for attempt in range(1000):
        try:
            return archsearch.load_spec(random_spec_dict(seed * 1000 + attempt))
        except SpecError:
            continue
    raise AssertionError(f"no valid random spec near seed {seed}")
