"""Zero-cost proxies: finite, deterministic, side-effect free, and right where the answer is known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from archsearch import SpecError
from archsearch.evaluate import ZeroCostConfig, zero_cost_scores

from .small_nets import tiny_hybrid

ALL = ZeroCostConfig(proxies=["synflow", "naswot", "grad_norm"], batch_size=32)


def _linear(bias: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(256, 10, bias=bias))


def test_every_proxy_is_finite_deterministic_and_leaves_the_model_alone(digits16):
    torch.manual_seed(0)
    model = tiny_hybrid()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = zero_cost_scores(model, digits16, ALL)
    assert list(first) == ["synflow", "naswot", "grad_norm"]
    assert all(isinstance(v, float) and math.isfinite(v) for v in first.values())
    assert zero_cost_scores(model, digits16, ALL) == first
    other = zero_cost_scores(model, digits16, ALL.model_copy(update={"seed": 1}))
    assert other["synflow"] == first["synflow"]  # no data involved
    assert other["naswot"] != first["naswot"] and other["grad_norm"] != first["grad_norm"]
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert model.training and all(m.training for m in model.modules())
    assert next(model.parameters()).dtype == torch.float32


def test_synflow_of_a_linear_map_is_the_log_of_its_absolute_weights(digits16):
    model = _linear(bias=False)  # R = sum_ij |W_ij| * 1, so dR/dW = 1
    score = zero_cost_scores(model, digits16, ZeroCostConfig())["synflow"]
    assert score == pytest.approx(math.log(model[1].weight.double().abs().sum().item()), rel=1e-9)


def test_synflow_grows_with_width(digits16):
    scores = []
    for dim in (8, 16, 32):
        torch.manual_seed(0)
        scores.append(zero_cost_scores(tiny_hybrid(dim=dim), digits16, ZeroCostConfig())["synflow"])
    assert scores[0] < scores[1] < scores[2]


def test_grad_norm_sums_the_norms_of_each_parameter_gradient(digits16):
    model = _linear()
    config = ZeroCostConfig(proxies=["grad_norm"], batch_size=10_000)  # the whole training set
    x = (digits16.train_images.float() / 255 - digits16.mean[0]) / digits16.std[0]
    loss = F.cross_entropy(model(x), digits16.train_labels)
    weight, bias = torch.autograd.grad(loss, list(model.parameters()))
    expected = weight.norm().item() + bias.norm().item()
    assert zero_cost_scores(model, digits16, config)["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert expected > torch.cat([weight.flatten(), bias]).norm().item()  # not the global norm


def test_naswot_scores_a_linear_map_below_a_relu_net(digits16):
    """A linear map has one Jacobian for every image: they correlate perfectly, the worst case."""
    config = ZeroCostConfig(proxies=["naswot"], batch_size=16)
    linear = zero_cost_scores(_linear(), digits16, config)["naswot"]
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Flatten(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
    nonlinear = zero_cost_scores(relu, digits16, config)["naswot"]
    k = 1e-5  # eigenvalues of the all-ones 16x16 matrix: 16 once, 0 fifteen times
    assert linear == pytest.approx(-(math.log(16 + k) + 1 / (16 + k) + 15 * (math.log(k) + 1 / k)), rel=1e-4)
    assert nonlinear > linear + 1000


def test_config_rejects_repeats_and_unknown_proxies():
    with pytest.raises(ValidationError, match="synflow is repeated"):
        ZeroCostConfig(proxies=["synflow", "naswot", "synflow"])
    with pytest.raises(ValidationError, match="'synflow', 'naswot' or 'grad_norm'"):
        ZeroCostConfig(proxies=["snip"])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="at least 1 item"):
        ZeroCostConfig(proxies=[])


def test_mismatched_model_is_a_spec_error(digits16):
    with pytest.raises(SpecError, match=r"head\.num_classes: digits has 10 classes \(got 4\)"):
        zero_cost_scores(tiny_hybrid(classes=4), digits16, ALL)
