"""Fixtures for the evals tests: a tiny random policy whose greedy output varies (so batching bugs
show), and synthetic result files."""

from __future__ import annotations

import contextlib

import pytest
import torch

import evals.generation as gen
from rltk.models import tiny_policy


def varied_tiny_policy(seed: int = 0):
    """``tiny_policy`` with its weights jittered: the plain tiny model greedily repeats one token,
    which would hide batching and caching mistakes; this one emits varied text and sometimes EOS."""
    pol = tiny_policy(seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in pol.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
    pol.model.eval()
    return pol


@pytest.fixture
def varied_policy():
    return varied_tiny_policy(0)


@pytest.fixture
def fp32(monkeypatch):
    """Generation without bf16 autocast, for exact comparisons with ``model.generate``."""
    monkeypatch.setattr(gen, "autocast", lambda device: contextlib.nullcontext())


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Evals tests decode in one CPU thread, restored afterwards. On a machine whose cores are shared
    with other jobs, two OpenMP threads spin at every barrier waiting for a preempted partner:
    measured here, a 6-row decode took 33-60 s with 2 threads against about 1 s with 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
