from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def math500() -> list[dict]:
    path = SHARED_DATA / "math500" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found (shared/data beside the repo)")
    return read_jsonl(path)


@pytest.fixture(scope="session")
def gsm8k_test() -> list[dict]:
    path = SHARED_DATA / "gsm8k" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found (shared/data beside the repo)")
    return read_jsonl(path)
