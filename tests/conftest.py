"""Shared test set-up: offline hub, quiet tokenizers, paths to the shared benchmark data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be fetched from a hub in tests
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repo (GSM8K, MATH-500, legal); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2_policy_nf4():
    """The embedded SmolLM2-135M, 4-bit NF4 + LoRA r=8, loaded once per session (slow tests only)."""
    from rltk.models import LoraSettings, load_policy

    return load_policy("smollm2-135m", quant="nf4", lora=LoraSettings(r=8, alpha=16))
