from __future__ import annotations

from pathlib import Path

import pytest

from rltk.core.rows import read_rows

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def math500() -> list[dict]:
    path = SHARED_DATA / "math500" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found (shared/data beside the repo)")
    return read_rows(path).rows


@pytest.fixture(scope="session")
def gsm8k_test() -> list[dict]:
    path = SHARED_DATA / "gsm8k" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found (shared/data beside the repo)")
    return read_rows(path).rows
