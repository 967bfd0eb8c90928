"""Shared fixtures: deterministic seeds, a thread count that suits the 2-core CI machines."""

from __future__ import annotations

import pytest
import torch

import archsearch


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _fused_attention_restored():
    """Tests may flip the attention path; make sure each one leaves the default in place."""
    before = archsearch.ops.uses_fused_attention()
    yield
    archsearch.set_fused_attention(before)
