"""Shared fixtures: deterministic seeds, a thread count that suits the 2-core CI machines, digits at 16 px,
one PostgreSQL server for the session."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
import torch

import archsearch
from archsearch.data import Dataset, DigitsData, load_dataset

from .pg import TemporaryPostgres, find_postgres


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


@pytest.fixture(scope="module")
def digits16() -> Dataset:
    """scikit-learn's handwritten digits as one-channel 16x16 images (loaded once per test module)."""
    return load_dataset(DigitsData(), input_size=(16, 16), channels=1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    """A throwaway PostgreSQL server on loopback, started once for the session (the worker and
    ledger tests use distinct study names in its one database); skipped without the binaries or
    psycopg2."""
    if find_postgres() is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip("no psycopg2: pip install 'archsearch[cluster]'")
    with TemporaryPostgres() as pg:
        yield pg
