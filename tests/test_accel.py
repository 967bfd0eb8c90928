"""The trainer's GPU options, run on the CPU: bf16 autocast, channels-last, torch.compile,
gradient checkpointing (same loss, gradients and BatchNorm statistics as without), the peak
memory field, and the experiment loader's errors for bad values."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from archsearch import SpecError
from archsearch.data import Dataset
from archsearch.evaluate import TrainConfig, block_modules, grad_checkpointing, train_and_evaluate
from archsearch.search import load_experiment

from .small_nets import tiny_hybrid

FAST = {"batch_size": 64, "lr": 1e-2, "crop_padding": 0, "flip": False, "threads": 1, "device": "cpu"}


def _conv_dropout_net() -> nn.Module:
    """tiny_hybrid with dropout in the head: checkpointing must replay the same random numbers."""
    torch.manual_seed(0)
    model = tiny_hybrid()
    model.head.drop.p = 0.3
    return model


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_checkpointing_gives_the_same_loss_gradients_and_norm_statistics():
    plain = _conv_dropout_net()
    checked = copy.deepcopy(plain)
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    loss_a, grads_a = _step(plain, x, y)
    with grad_checkpointing(checked):
        loss_b, grads_b = _step(checked, x, y)
    assert loss_a == pytest.approx(loss_b, abs=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-6, rtol=1e-5, msg=name)
    for (name, a), b in zip(plain.state_dict().items(), checked.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # BatchNorm running statistics updated once, not twice
    assert "forward" not in block_modules(checked)[0].__dict__  # restored on exit


def test_checkpointing_frees_block_activations():
    """The saved-tensor count of a forward drops: blocks keep only their inputs."""
    model = _conv_dropout_net().train()
    x = torch.randn(4, 1, 16, 16)

    def saved() -> int:
        count = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal count
            count += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x).sum()
        return count

    plain = saved()
    with grad_checkpointing(model):
        assert saved() < plain


def test_checkpointing_needs_stages_of_blocks():
    with pytest.raises(ValueError, match=r"stages of blocks.*Linear"), grad_checkpointing(nn.Linear(2, 2)):
        pass


def test_channels_last_gives_the_same_outputs():
    model = _conv_dropout_net().eval()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "bf16"},
        {"channels_last": True},
        {"grad_checkpointing": True},
        # dynamo's capture and the compiled module in the loop; the cheapest backend ("eager"):
        # test_full_train's combined run takes the aot_eager path (AOTAutograd) once
        {"compile": True, "compile_backend": "eager"},
    ],
    ids=["bf16", "channels_last", "checkpointing", "compile"],
)
def test_each_option_trains_to_finite_results(digits16: Dataset, options):
    torch.manual_seed(0)
    model = tiny_hybrid()
    result = train_and_evaluate(model, digits16, TrainConfig(steps=6, **FAST, **options))
    assert math.isfinite(result.train_loss) and 0 <= result.accuracy <= 1
    assert result.steps == 6 and result.peak_memory_mb is None  # measured on CUDA only
    assert type(model).__name__ == "ArchNet" and "forward" not in block_modules(model)[0].__dict__


def test_checkpointed_training_matches_plain_training(digits16: Dataset):
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = tiny_hybrid()
        config = TrainConfig(steps=4, grad_checkpointing=checkpointing, **FAST)
        result = train_and_evaluate(model, digits16, config)
        results.append((result.train_loss, result.accuracy, model.state_dict()))
    assert results[0][:2] == pytest.approx(results[1][:2], abs=1e-5)
    for name, value in results[0][2].items():
        torch.testing.assert_close(results[1][2][name], value, atol=1e-5, rtol=1e-4, msg=name)


def test_precision_default_keeps_amp_meaning():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert TrainConfig().precision_on(cuda) == "bf16" and TrainConfig().precision_on(cpu) == "fp32"
    assert TrainConfig(amp=False).precision_on(cuda) == "fp32"
    assert TrainConfig(precision="bf16").precision_on(cpu) == "bf16"
    assert TrainConfig(amp=False, precision="fp32").precision_on(cuda) == "fp32"


@pytest.mark.parametrize(
    ("evaluator", "message"),
    [
        ("{kind: train, precision: fp16}", r"evaluator\.precision: not an allowed value"),
        ("{kind: train, compile: yes please}", r"evaluator\.compile"),
        ("{kind: train, channels_last: 1}", r"evaluator\.channels_last"),
        ("{kind: train, grad_checkpointing: maybe}", r"evaluator\.grad_checkpointing"),
        ("{kind: train, compile_backend: tvm}", r"evaluator\.compile_backend"),
        ("{kind: train, amp: false, precision: bf16}", "amp: false contradicts precision: bf16"),
    ],
)
def test_bad_values_name_the_file_and_line(tmp_path, evaluator, message):
    path = tmp_path / "exp.yaml"
    path.write_text(f"space: s.yaml\nobjectives: [{{metric: accuracy}}]\nevaluator: {evaluator}\n")
    with pytest.raises(SpecError, match=message) as info:
        load_experiment(path)
    assert "exp.yaml:3" in str(info.value)
