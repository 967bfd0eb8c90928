"""The kinds of issue 14 (squeeze-excitation, depthwise-separable MBConv, multi-conv stems, the
average-pool shortcut, the pooling mixer, the distillation token): their checks and their
behaviour beyond the zoo tests (parameter counts, analytic == traced) that cover their models."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import archsearch
from archsearch import SpecError
from archsearch.cost import analytic_costs, count_traced


def _spec(stage: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"input": {"size": 32}, "stages": [stage], "head": {"num_classes": 10}, **extra}


def _costs_agree(spec: dict[str, Any]) -> torch.nn.Module:
    model = archsearch.build(archsearch.load_spec(spec))
    shape = model.plan.input_shape
    traced = count_traced(model, (1, shape.channels, shape.height, shape.width))
    analytic = analytic_costs(model.plan)
    assert (analytic.params, analytic.macs, analytic.activations) == (
        traced.params,
        traced.macs,
        traced.activations,
    )
    return model


# --------------------------------------------------------------------------- squeeze-excitation


def test_squeeze_excitation_reduces_the_block_input_channels():
    stage = {"embed": {"kind": "block", "stride": 2}, "dim": 48, "depth": 2, "expansion": 1}
    model = _costs_agree(_spec({**stage, "mixer": {"kind": "conv", "groups": 2, "se": 0.25}}))
    first, second = model.stages[0].blocks
    # RegNetY: round(0.25 x block input channels), on the bottleneck width
    assert (first.se.fc1.in_channels, first.se.fc1.out_channels) == (48, 1)  # 3 input channels
    assert (second.se.fc1.in_channels, second.se.fc1.out_channels) == (48, 12)


def test_squeeze_excitation_gates_channels():
    model = archsearch.build(
        archsearch.load_spec(
            _spec({"dim": 16, "depth": 1, "mixer": {"kind": "conv", "se": 0.5}, "expansion": 1})
        )
    ).eval()
    se = model.stages[0].blocks[0].se
    x = torch.randn(2, 16, 5, 5)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)


def test_squeeze_excitation_needs_a_reduced_channel():
    with pytest.raises(SpecError, match=r"stages\[0\]\.mixer\.se: .*= 0 channels.*got 0.1"):
        archsearch.load_spec(_spec({"dim": 16, "depth": 1, "mixer": {"kind": "conv", "se": 0.1}}))


def test_mbconv_without_expand_conv():
    stage = {
        "dim": 16,
        "depth": 2,
        "expansion": 1,
        "mixer": {"kind": "mbconv", "expand_conv": False, "se": 0.25},
    }
    model = _costs_agree(_spec(stage, stem={"kind": "conv", "channels": 16}))
    block = model.stages[0].blocks[0]
    assert isinstance(block.conv1, torch.nn.Identity)
    assert block.conv2.conv.in_channels == 16 and block.residual
    with pytest.raises(SpecError, match=r"stages\[0\]\.expansion: expand_conv: false .* must be 1.*got 4"):
        archsearch.load_spec(_spec({**stage, "expansion": 4}))


def test_new_fields_leave_earlier_spec_hashes_alone():
    """Fields added to a kind are left out of the canonical form at their default: a spec that does
    not use them hashes as before (values recorded before issue 14)."""
    from archsearch.spec import spec_hash

    assert spec_hash(archsearch.load_spec("resnet-50")) == "5d727eb00be96a72"
    assert spec_hash(archsearch.load_spec("mobilevit-s")) == "e87432fb9747c6e8"
    stage = {"dim": 16, "depth": 1, "expansion": 1, "mixer": {"kind": "conv"}}
    with_se = {**stage, "mixer": {"kind": "conv", "se": 0.25}}
    assert spec_hash(archsearch.load_spec(_spec(stage))) != spec_hash(archsearch.load_spec(_spec(with_se)))
