"""An adapter is evaluated the way it was trained: the system prompt and template recorded beside it
are used by `rltk eval --adapter` unless `--system` overrides (issue 13, item 7)."""

from __future__ import annotations

import json

import pytest

from rltk.cli import main
from rltk.core.config import from_dict
from rltk.policy import read_prompt
from rltk.sft import SFTJobConfig, train_sft


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    run = tmp_path_factory.mktemp("sft") / "run"
    cfg = from_dict(SFTJobConfig, {
        "model": {"spec": "tiny-random", "quant": "none", "lora": {"r": 4, "alpha": 8}},
        "data": {"source": "arithmetic", "limit": 8, "system_prompt": "Be terse.", "prompt": "Q: {question}"},
        "sft": {"steps": 1, "batch_size": 4}, "log": {"live": False}, "run_dir": str(run)})
    return train_sft(cfg).adapter_dir


def _prompts(path) -> list[str]:
    result = json.loads(path.read_text())
    return [r["prompt"] for r in result["records"]]


def test_the_adapter_records_its_training_prompt(adapter):
    assert read_prompt(adapter) == {"system_prompt": "Be terse.", "prompt": "Q: {question}", "messages_column": None}


def test_eval_asks_the_way_the_adapter_was_trained(adapter, tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["eval", "--task", "arithmetic", "--model", "tiny-random", "--adapter", str(adapter), "--limit", "2",
                 "--max-new-tokens", "4", "--no-progress", "-o", str(out)]) == 0
    assert "prompt: as the adapter was trained (system 'Be terse.', template 'Q: {question}')" in capsys.readouterr().out
    prompts = _prompts(out)
    assert all("Be terse." in p and "Q: " in p for p in prompts)


def test_system_overrides_the_recorded_prompt(adapter, tmp_path):
    out = tmp_path / "b.json"
    assert main(["eval", "--task", "arithmetic", "--model", "tiny-random", "--adapter", str(adapter), "--limit", "2",
                 "--max-new-tokens", "4", "--no-progress", "--system", "Answer in Latin.", "-o", str(out)]) == 0
    prompts = _prompts(out)
    assert all("Answer in Latin." in p and "Be terse." not in p for p in prompts)
