"""The zoo against the reference implementations: exact parameter counts, forward and backward."""

from __future__ import annotations

import difflib

import pytest
import torch

import archsearch
from archsearch.cost import analytic_costs
from archsearch.spec import ZOO_DIR, normalize

ZOO = archsearch.zoo_names()

# Exact counts of the reference implementations (../shared/REFERENCE.md: timm 1.0.31,
# microsoft/CvT). Params = sum(p.numel() for p in model.parameters()).
REFERENCE_PARAMS = {
    "resnet-50": 25_557_032,
    "vit-b16": 86_567_656,
    "deit-s": 22_050_664,
    "deit-ti": 5_717_416,
    "cvt-13": 19_997_480,
    "cvt-21": 31_622_696,
    "t2t-vit-t-14": 21_541_070,
    "pvt-v2-b1": 14_009_000,
    "convnext-t": 28_589_128,
    "swin-t": 28_288_354,
    "mobilevit-s": 5_578_632,
    "mobilevit-xxs": 1_272_024,
    "regnety-016": 11_202_430,
    "efficientnet-b0": 5_288_548,
    "resnet-50d": 25_576_264,
    "botnet-26t": 12_488_672,
    "poolformer-s12": 11_915_176,
    "deit-b-distilled": 87_338_192,
    "lambda-resnet-26t": 10_958_272,
    "halonet-26t": 12_480_288,
    "twins-svt-s": 24_060_776,
    "convit-ti": 5_710_512,
    "vit-b16-r50": 97_890_112,
    # official NVIDIA/transformer-ls imagenet/models/msvit.py MsViT, ViL-LS-Medium arch of
    # launch/train/train_medium_224.sh (benchmarks/longshort_reference.py counts it)
    "transformer-ls-m": 39_799_423,
    # official RedNet-50: d-li14/involution cls/mmcls/models/backbones/rednet.py (depth 50, naive
    # involution) in mmcls' ImageClassifier with a 1000-class Linear head; counted by
    # benchmarks/_official_rednet.py (paper: 15.5M)
    "rednet-50": 15_540_806,
    "mvitv2-t": 24_173_320,
}
# Trainable parameters where they differ from REFERENCE_PARAMS (a frozen position table).
REFERENCE_TRAINABLE = {"t2t-vit-t-14": 21_465_422}
# No reference code exists for BoT50; the paper gives 20.8M, REFERENCE.md 20.86M +-0.5%.
APPROXIMATE_PARAMS = {"bot-50": (20.86e6, 0.005)}


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_zoo_model_has_a_reference_figure():
    assert set(ZOO) == set(REFERENCE_PARAMS) | set(APPROXIMATE_PARAMS)


@pytest.mark.parametrize("name", ZOO)
def test_parameter_count_matches_reference(name):
    with torch.device("meta"):
        model = archsearch.create_model(name)
    count = param_count(model)
    if name in REFERENCE_PARAMS:
        assert count == REFERENCE_PARAMS[name]
    else:
        target, tolerance = APPROXIMATE_PARAMS[name]
        assert abs(count - target) <= tolerance * target, f"{name}: {count:,} vs {target:,.0f}"


@pytest.mark.parametrize("name", ZOO)
def test_trainable_parameter_count_matches_reference(name):
    with torch.device("meta"):
        model = archsearch.create_model(name)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert analytic_costs(model.plan).trainable_params == trainable
    expected = REFERENCE_TRAINABLE.get(name, REFERENCE_PARAMS.get(name))
    if expected is not None:
        assert trainable == expected


def _forward_backward(model: torch.nn.Module, size: int, classes: int) -> None:
    model.train()
    x = torch.randn(2, 3, size, size)
    y = model(x)
    assert y.shape == (2, classes) if classes else y.ndim == 2 and y.shape[0] == 2  # 0: features
    assert torch.isfinite(y).all()
    loss = torch.nn.functional.cross_entropy(y, torch.tensor([0, 1])) if classes else y.square().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None and p.requires_grad]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_forward_backward_native_resolution(name):
    spec = archsearch.load_spec(name)
    model = archsearch.build(spec)
    _forward_backward(model, spec.input.hw[0], spec.head.num_classes)


# A second resolution for every zoo model: 160 divides into 16-pixel patches and keeps
# every CvT stage and the BoTNet c5 map (5x5) valid; MobileViT resizes its last 5x5 map to
# 6x6 for the 2x2 patches and back, as timm does.
@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_forward_backward_second_resolution(name):
    model = archsearch.create_model(name, input_size=160, num_classes=10)
    _forward_backward(model, 160, 10)


@pytest.mark.parametrize("name", ZOO)
def test_normalised_shapes_match_the_built_model(name):
    """The shapes the normaliser predicts are the shapes the model produces, stage by stage.

    On the meta device: every layer's own shape rule runs, without the arithmetic or the weight
    initialisation (the forward-backward tests above run the real thing at two resolutions)."""
    with torch.device("meta"):
        model = archsearch.create_model(name, input_size=96).eval()
    seen = []
    for stage in model.stages:
        stage.register_forward_hook(lambda m, i, o: seen.append((tuple(o[0].shape[1:]), o[1])))
    with torch.inference_mode():
        model(torch.randn(1, 3, 96, 96, device="meta"))
    for plan, (shape, cls) in zip(model.plan.stages, seen, strict=True):
        assert shape == plan.out_shape.as_tuple()
        assert (cls.shape[1] if cls is not None else 0) == plan.out_shape.cls_tokens


@pytest.mark.parametrize("name", ZOO)
def test_zoo_yaml_is_short(name):
    lines = (ZOO_DIR / f"{name}.yaml").read_text().splitlines()
    assert len(lines) <= 40


def test_cvt21_differs_from_cvt13_in_one_line():
    a = (ZOO_DIR / "cvt-13.yaml").read_text().splitlines()
    b = (ZOO_DIR / "cvt-21.yaml").read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(a, b, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert len(changed) == 2, changed  # one line out, one line in
    plan13, plan21 = normalize(archsearch.load_spec("cvt-13")), normalize(archsearch.load_spec("cvt-21"))
    assert [s.depth for s in plan13.stages] == [1, 2, 10]
    assert [s.depth for s in plan21.stages] == [1, 4, 16]


def test_create_model_overrides():
    model = archsearch.create_model("deit-ti", num_classes=7, input_size=[96, 128], in_chans=1)
    assert model.plan.input_shape.as_tuple() == (1, 96, 128)
    out = model(torch.randn(2, 1, 96, 128))
    assert out.shape == (2, 7)
    # the absolute position embedding follows the token count: 6 x 8 patches + cls
    assert model.stages[0].pos_embed.shape == (1, 6 * 8 + 1, 192)


def test_feature_extractor_with_zero_classes():
    model = archsearch.create_model("resnet-50", num_classes=0, input_size=64)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2048)
