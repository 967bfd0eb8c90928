"""``mixer: involution`` and the deep stem's involution (RedNet, Li et al. 2021): the layer against
the official naive path's arithmetic, shapes, costs, checks, the zoo model and a search space.
The zoo tests cover rednet-50's parameter count (the official code's) and analytic == traced."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import archsearch
from archsearch import SpecError
from archsearch.ops import Involution

from .helpers import costs_agree


def _spec(stage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"input": {"size": 32}, "stages": [stage], "head": {"num_classes": 10}, **extra}


def _official_naive(layer: Involution, x: torch.Tensor) -> torch.Tensor:
    """d-li14/involution ``involution_naive.forward``, line for line, on ``layer``'s weights."""
    k, g = layer.kernel, layer.groups
    weight = layer.span(layer.reduce(x if layer.stride == 1 else F.avg_pool2d(x, layer.stride, layer.stride)))
    b, _, h, w = weight.shape
    weight = weight.view(b, g, k**2, h, w).unsqueeze(2)
    out = F.unfold(x, k, 1, (k - 1) // 2, layer.stride).view(b, g, layer.group_channels, k**2, h, w)
    return (weight * out).sum(dim=3).view(b, g * layer.group_channels, h, w)


@pytest.mark.parametrize(
    ("channels", "kernel", "stride", "group_channels", "side"),
    [(32, 7, 1, 16, 12), (32, 3, 2, 16, 12), (24, 5, 2, 4, 8), (8, 1, 1, 8, 5), (16, 7, 4, 2, 16)],
)
def test_involution_computes_what_the_official_naive_path_does(
    channels, kernel, stride, group_channels, side
):
    torch.manual_seed(0)
    layer = Involution(channels, kernel, stride, group_channels, reduction=4).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0.0, 0.5)
        x = torch.randn(2, channels, side, side)
        ours = layer(x)
        assert ours.shape == (2, channels, side // stride, side // stride)
        torch.testing.assert_close(ours, _official_naive(layer, x), rtol=1e-5, atol=1e-5)


def test_involution_weights_each_pixel_by_its_own_kernel():
    """Kernels differ per pixel: a pixel's output changes with its own neighbourhood only."""
    torch.manual_seed(0)
    layer = Involution(16, 3).eval()
    x = torch.randn(1, 16, 9, 9)
    y = x.clone()
    y[..., 0, 0] += 1.0
    with torch.no_grad():
        delta = (layer(x) - layer(y)).abs().sum(1)[0]
    assert delta[:2, :2].min() > 0 and delta[2:].abs().max() == 0 and delta[:, 2:].abs().max() == 0


def test_involution_block_shapes_costs_and_odd_maps():
    stage = {"embed": {"kind": "block", "stride": 2}, "dim": 64, "depth": 2}
    mixer = {"kind": "involution", "kernel": 5, "group_channels": 8, "reduction": 2}
    model = costs_agree({**_spec({**stage, "mixer": mixer}), "input": {"size": 15}})
    assert model.plan.stages[0].out_shape.as_tuple() == (64, 8, 8)  # ceil(15 / 2), as the shortcut
    layer = model.stages[0].blocks[0].mixer
    assert isinstance(layer, Involution) and layer.stride == 2
    assert (layer.reduce[0].out_channels, layer.span.out_channels) == (16 // 2, 25 * 16 // 8)
    model(torch.randn(2, 3, 15, 15)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("mixer", "match"),
    [
        ({"kernel": 4}, r"stages\[0\]\.mixer\.kernel: the kernel must be odd.*got 4"),
        (
            {"group_channels": 5},
            r"stages\[0\]\.mixer\.group_channels: group_channels must divide the bottleneck width 16 "
            r"\(got 5\); allowed: 1, 2, 4, 8, 16$",
        ),
        (
            {"group_channels": 4, "reduction": 32},
            r"stages\[0\]\.mixer\.reduction: the kernel generator reduces the bottleneck width 16 .* = 0 "
            r"channels \(got 32\); allowed: 1 to 16$",
        ),
    ],
)
def test_involution_checks_name_the_field(mixer, match):
    stage = {"embed": {"kind": "block", "stride": 1}, "dim": 64, "depth": 1}
    with pytest.raises(SpecError, match=match):
        archsearch.load_spec(_spec({**stage, "mixer": {"kind": "involution", **mixer}}))


def test_a_stage_can_mix_involution_and_conv_blocks():
    stage = {"embed": {"kind": "block", "stride": 2}, "dim": 32, "depth": 2, "expansion": 2}
    model = costs_agree(_spec({**stage, "mixer": [{"kind": "involution", "kernel": 3}, "conv"]}))
    assert isinstance(model.stages[0].blocks[0].mixer, Involution)
    assert isinstance(model.stages[0].blocks[1].mixer, torch.nn.Conv2d)


# --------------------------------------------------------------------------- stem


def test_deep_stem_involution_is_rednets():
    stem = {"kind": "deep", "channels": [16, 16, 32], "involution": [1]}
    stage = {"embed": {"kind": "block", "stride": 1}, "dim": 64, "depth": 1, "mixer": "involution"}
    model = costs_agree(_spec(stage, stem=stem))
    layers = list(model.stem)
    assert isinstance(layers[1], Involution) and layers[1].kernel == 3 and layers[1].groups == 1
    assert isinstance(layers[2], torch.nn.BatchNorm2d) and isinstance(layers[3], torch.nn.ReLU)
    assert model.plan.stages[0].in_shape.as_tuple()[1:] == (8, 8)


@pytest.mark.parametrize(
    ("stem", "match"),
    [
        ({"channels": [16, 32], "involution": [1]}, r"stem: the involution at position 1 keeps its 16 input"),
        (
            {"channels": [8, 8], "involution": [1]},
            r"channels\[1\] must equal channels\[0\] and be a multiple of 16",
        ),
        (
            {"channels": [16, 16], "involution": [2]},
            r"stem: involution position 2 is past the last conv \(1\)",
        ),
        ({"channels": [16, 16], "involution": [0]}, r"stem\.involution\[0\]: must be at least 1"),
        ({"channels": [16, 16], "involution": [1], "kernel": 2}, r"stem: an involution's kernel must be odd"),
    ],
)
def test_deep_stem_involution_checks(stem, match):
    stage = {"embed": {"kind": "block", "stride": 1}, "dim": 64, "depth": 1, "mixer": "conv"}
    with pytest.raises(SpecError, match=match):
        archsearch.load_spec(_spec(stage, stem={"kind": "deep", **stem}))


# --------------------------------------------------------------------------- zoo and search


def test_rednet50_is_resnet50_with_involutions():
    plan = archsearch.normalize(archsearch.load_spec("rednet-50"))
    assert [s.depth for s in plan.stages] == [3, 4, 6, 3]
    assert {
        (b.mixer.kind, b.mixer.kernel, b.mixer.group_channels, b.mixer.reduction) for b in plan.blocks
    } == {("involution", 7, 16, 4)}
    assert plan.spec.stem.involution == [1] and plan.spec.stem.channels == [32, 32, 64]
    assert plan.stages[-1].out_shape.as_tuple() == (2048, 7, 7)


SPACE = {
    "input": {"size": 32, "channels": 3},
    "stem": {"choice": [None, {"kind": "deep", "channels": [16, 16], "pool": "none", "involution": [1]}]},
    "stages": [
        {
            "embed": {"kind": "block", "stride": 2},
            "dim": {"choice": [32, 64]},
            "depth": {"int": [1, 2]},
            "mixer": {
                "choice": [
                    "conv",
                    {
                        "kind": "involution",
                        "kernel": {"choice": [3, 5, 7]},
                        "group_channels": {"choice": [4, 8]},
                        "reduction": {"choice": [2, 4]},
                    },
                ]
            },
        }
    ],
    "head": {"pool": "avg", "num_classes": 10},
}


def test_involution_is_a_choice_of_a_search_space():
    from archsearch.cost import count_traced
    from archsearch.space import RandomSuggest, load_space

    space, suggest = load_space(SPACE), RandomSuggest(0)
    seen: set[tuple[Any, ...]] = set()
    for _ in range(24):
        candidate = space.candidate(suggest)
        plan = candidate.plan
        assert plan is not None and candidate.costs is not None, candidate.rejected
        model = archsearch.build(plan)
        traced = count_traced(model, (1, 3, 32, 32))
        assert (traced.params, traced.macs) == (candidate.costs.params, candidate.costs.macs)
        seen |= {(b.mixer.kind, getattr(b.mixer, "kernel", None)) for b in plan.blocks}
        seen |= {("stem", bool(plan.spec.stem))}
    assert {("involution", 3), ("involution", 7), ("conv", 3), ("stem", True), ("stem", False)} <= seen


def test_involution_members_run_through_a_weight_sharing_supernet():
    """Width nests (leading slices of the generator's convs and groups); kernel, group_channels
    and reduction are structural: members through the supernet equal them stand-alone."""
    from archsearch.space import RandomSuggest, load_space
    from archsearch.supernet import Supernet

    space = load_space(
        {**SPACE, "stem": {"kind": "deep", "channels": [16, 16], "pool": "none", "involution": [1]}}
    )
    net, suggest = Supernet(space).eval(), RandomSuggest(7)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    seen = set()
    for _ in range(16):
        plan = space.candidate(suggest).plan
        assert plan is not None
        with torch.no_grad():
            assert (net(x, plan) - net.member(plan).eval()(x)).abs().max().item() <= 1e-5
        seen |= {(b.mixer.kind, b.dim) for b in plan.blocks}
    assert {("involution", 32), ("involution", 64)} <= seen


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_rednet_exports_through_plain_ops(tmp_path, fmt):
    """The counted custom op of the weighted sum is replaced by its aten ops under the exporters."""
    result = archsearch.export("rednet-50", fmt, tmp_path / f"rednet.{fmt}", num_classes=10, input_size=64)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
