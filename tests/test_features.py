"""features_only: the stage outputs of a backbone with their channels and strides (timm's
convention), and a segmentation decoder that learns on them."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import archsearch

SIZE = 96  # every zoo model builds at 96 px (windows, tables and pools fit)


@pytest.mark.parametrize("name", archsearch.zoo_names())
def test_every_zoo_model_returns_its_stage_maps_as_feature_info_says(name):
    torch.manual_seed(0)
    net = archsearch.create_model(name, input_size=SIZE, features_only=True).eval()
    torch.manual_seed(0)
    whole = archsearch.create_model(name, input_size=SIZE).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        maps = net(x)
        last, _ = whole.forward_features(x)
    stages = net.plan.stages
    assert len(maps) == len(stages) == len(net.feature_info)
    assert net.feature_info.channels() == [s.out_shape.channels for s in stages]
    assert net.feature_info.reduction() == [s.reduction for s in stages]
    for m, s in zip(maps, stages, strict=True):
        assert tuple(m.shape) == (2, s.out_shape.channels, s.out_shape.height, s.out_shape.width)
    assert torch.equal(maps[-1], last)  # the same weights and path as the classifier's backbone
    assert not any(name.startswith("head") for name, _ in net.named_parameters())


def test_out_indices_choose_and_order_the_maps_and_drop_later_stages():
    net = archsearch.create_model("resnet-50", input_size=64, features_only=True, out_indices=(-1, 1))
    assert net.out_indices == (3, 1)
    assert net.feature_info.channels() == [2048, 512] and net.feature_info.reduction() == [32, 8]
    maps = net(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 2048, 2, 2), (1, 512, 8, 8)]
    short = archsearch.create_model("resnet-50", input_size=64, features_only=True, out_indices=[1])
    assert len(short.stages) == 2  # stages after the last chosen one are not kept


@pytest.mark.parametrize("indices", [(4,), (-5,), (1, 1), ()])
def test_bad_out_indices_name_the_allowed_range(indices):
    with pytest.raises(ValueError, match=r"\(got .*\); allowed: distinct indices in -4\.\.3"):
        archsearch.create_model("resnet-50", input_size=64, features_only=True, out_indices=indices)


def test_an_int_out_indices_takes_the_last_stages_as_timm():
    net = archsearch.create_model("resnet-50", input_size=64, features_only=True, out_indices=2)
    assert net.out_indices == (2, 3)  # timm: an int n is the last n feature maps
    with pytest.raises(ValueError, match=r"out_indices 5: .*4 stages.*\(got 5\); allowed: 1 to 4"):
        archsearch.create_model("resnet-50", input_size=64, features_only=True, out_indices=5)


@pytest.mark.parametrize(
    ("indices", "got"),
    [("1", "'1'"), ((True,), "(True,)"), ((1.0,), "(1.0,)"), ((None,), "(None,)"), (0, "0")],
)
def test_out_indices_of_another_type_are_refused_naming_the_value(indices, got):
    with pytest.raises(ValueError, match=r"out_indices .*\(got " + re.escape(got) + r"\); allowed: "):
        archsearch.create_model("resnet-50", input_size=64, features_only=True, out_indices=indices)


def test_out_indices_without_features_only_is_refused():
    with pytest.raises(ValueError, match="add features_only=True"):
        archsearch.create_model("resnet-50", out_indices=(1,))


def test_a_size_dependent_backbone_refuses_another_size_unless_dynamic():
    net = archsearch.create_model("swin-t", input_size=96, features_only=True)
    with pytest.raises(archsearch.InputSizeError):
        net(torch.randn(1, 3, 128, 128))
    net.set_dynamic_size(True)
    assert [m.shape[-1] for m in net(torch.randn(1, 3, 128, 128))] == [32, 16, 8, 4]


HYBRID = """
input: {size: 32, channels: 1}
stem: {kind: conv, channels: 16}
stages:
  - {embed: {kind: block, stride: 1}, dim: 32, depth: 1, mixer: conv}
  - {embed: {kind: conv, kernel: 3, stride: 2, padding: 1}, dim: 32, depth: 1,
     mixer: {kind: attention, heads: 2}}
  - {embed: {kind: conv, kernel: 3, stride: 2, padding: 1}, dim: 64, depth: 1,
     mixer: {kind: window, heads: 2, window: 4}}
head: {pool: avg, num_classes: 10}
"""


class TinyUNet(nn.Module):
    """Upsample the deepest map, add each shallower one (1x1-projected), predict a mask at full size."""

    def __init__(self, channels: list[int]):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, 16, 1) for c in channels)
        self.out = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = self.lateral[-1](maps[-1])
        for lateral, m in zip(reversed(self.lateral[:-1]), reversed(maps[:-1]), strict=True):
            y = F.interpolate(y, size=m.shape[-2:], mode="bilinear", align_corners=False) + lateral(m)
        return self.out(F.interpolate(y, size=size, mode="bilinear", align_corners=False))


def test_a_unet_style_decoder_learns_to_segment_digits_on_a_hybrids_features(tmp_path):
    path = tmp_path / "hybrid.yaml"
    path.write_text(HYBRID)
    torch.manual_seed(0)
    backbone = archsearch.create_model(str(path), features_only=True)
    decoder = TinyUNet(backbone.feature_info.channels())
    digits = torch.tensor(load_digits().images[:256], dtype=torch.float32)[:, None] / 16
    images = F.interpolate(digits, size=(32, 32), mode="bilinear", align_corners=False)
    masks = (images > 0.3).float()  # the strokes
    params = [*backbone.parameters(), *decoder.parameters()]
    optimiser = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for step in range(40):
        batch = slice((step * 32) % 256, (step * 32) % 256 + 32)
        logits = decoder(backbone(images[batch]), (32, 32))
        loss = F.binary_cross_entropy_with_logits(logits, masks[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert logits.shape == (32, 1, 32, 32)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    assert all(p.grad is not None for p in backbone.parameters())  # every stage learns
