"""Chaos: bad values and unusable paths are one line and exit 2 at the boundary, before any model loads
(issue 12, case 8)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import rltk.grpo.job as job
import rltk.grpo.loop as loop
from rltk.cli import main

pytestmark = pytest.mark.chaos

ROOT = Path(__file__).resolve().parents[2]
GRPO = str(ROOT / "examples" / "arithmetic" / "grpo.yaml")
SFT = str(ROOT / "examples" / "arithmetic" / "sft.yaml")


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Any model load here is a failure of the test: these errors must come first."""
    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the bad input was reported")

    monkeypatch.setattr(loop, "policy_from_config", refuse)
    monkeypatch.setattr(job, "policy_from_config", refuse)


def _one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rltk: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("override, says", [
    ("grpo.lr=0", "lr must be > 0, got 0.0"),
    ("grpo.lr=-1e-5", "lr must be > 0"),
    ("grpo.micro_batch_size=0", "micro_batch_size must be >= 1"),
    ("sampling.group_size=1", "need at least 2 completions per prompt"),
    ("checkpoint.every=-1", "every must be >= 0"),
    ("checkpoint.keep=-2", "keep must be >= 0"),
    ("grpo.epsilon_low=-0.1", "epsilon_low must be >= 0"),
    ("grpo.mu=0", "mu must be >= 1"),
    ("grpo.max_grad_norm=-1", "max_grad_norm must be >= 0"),
    ("grpo.min_lr_ratio=2", "min_lr_ratio must be >= 0 and <= 1"),
    ("eval.n=0", "n must be >= 1"),
    ("eval.sampled_stages=[base,final]", "unknown stage(s) final"),
    ("reward_timeout_s=0", "reward_timeout_s must be > 0"),
    ("log.samples_every=-1", "samples_every must be >= 0"),
    ("distributed.workers=-1", "workers must be >= 0"),
    ("distributed.placement=NEAR", "placement must be PACK"),
    ("distributed.reward_tasks=true", "reward_tasks: true needs Ray rollout workers"),
    ("sampling.temperature=0", "temperature must be > 0"),
])
def test_bad_grpo_values_fail_at_config_time(capsys, override, says):
    err = _one_line_error(capsys, ["grpo", GRPO, override])
    assert says in err and "grpo.yaml" in err


@pytest.mark.parametrize("override, says", [
    ("sft.lr=0", "lr must be > 0"),
    ("sft.batch_size=0", "batch_size must be >= 1"),
    ("sft.steps=0", "steps must be >= 1"),
    ("sft.max_length=1", "max_length must be >= 2"),
])
def test_bad_sft_values_fail_at_config_time(capsys, override, says):
    assert says in _one_line_error(capsys, ["sft", SFT, override])


def test_a_run_dir_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    err = _one_line_error(capsys, ["grpo", GRPO, f"run_dir={tmp_path}/afile/run"])
    assert "afile is a file, not a folder" in err


def test_a_run_dir_name_too_long_is_one_line(tmp_path, capsys):
    err = _one_line_error(capsys, ["grpo", GRPO, f"run_dir={tmp_path}/{'x' * 300}"])
    assert "File name too long" in err


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="needs /dev/full")
def test_a_full_disk_is_one_line_and_the_device_is_left_alone(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"completion": "#### 4", "answer": "4"}) + "\n")
    err = _one_line_error(capsys, ["reward", "score", "--reward", "math_answer", "--input", str(rows),
                                   "--output", "/dev/full"])
    assert "No space left on device" in err
    assert Path("/dev/full").is_char_device()  # written to, never replaced by a renamed temp file


def test_an_unwritable_output_folder_is_one_line(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"completion": "#### 4", "answer": "4"}) + "\n")
    target = "/proc/rltk-cannot-write-here/out.jsonl"  # refused even for root
    err = _one_line_error(capsys, ["reward", "score", "--reward", "math_answer", "--input", str(rows),
                                   "--output", target])
    assert "/proc/rltk-cannot-write-here" in err
    assert not os.path.exists(target)
