"""Chaos: a failed reward sample never becomes training signal, and a reward that fails on every sample
stops the run (issue 12, case 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rltk.checkpoint import list_checkpoints
from rltk.cli import main
from rltk.core.config import from_dict
from rltk.grpo import GRPOJobConfig, train
from rltk.learner import Learner
from rltk.metrics import read_jsonl

pytestmark = pytest.mark.chaos

FLAKY = '''
import time

def flaky_digits(completions, completion_ids, **kw):
    """Digits in the completion; RAISES on completions whose first token id is divisible by 4 (about 1 in 4)."""
    out = []
    for text, ids in zip(completions, completion_ids):
        if ids and ids[0] % 4 == 0:
            raise RuntimeError(f"cannot score token {ids[0]}")
        out.append(float(sum(ch.isdigit() for ch in text)))
    return out

def always_fails(completions, **kw):
    raise ValueError("the verifier is misconfigured")
'''


@pytest.fixture
def rewards_file(tmp_path) -> Path:
    path = tmp_path / "flaky_rewards.py"
    path.write_text(FLAKY)
    return path


def _cfg(tmp_path: Path, reward: str, **over) -> GRPOJobConfig:
    base = {
        "model": {"spec": "tiny-random", "quant": "none", "lora": {"r": 4, "alpha": 8}},
        "data": {"source": "arithmetic", "limit": 40},
        "sampling": {"group_size": 8, "max_new_tokens": 6},
        "grpo": {"steps": 3, "prompts_per_step": 2, "lr": 0.01, "micro_batch_size": 16, "loss_agg": "token"},
        "rewards": [{"name": reward, "label": "flaky"}],
        "reward_timeout_s": 5.0,
        "checkpoint": {"every": 1, "keep": 5},
        "log": {"live": False, "samples_every": 1, "samples_groups": 2},
        "run_dir": str(tmp_path / "run"),
    }
    base.update(over)
    return from_dict(GRPOJobConfig, base)


def test_failed_samples_get_no_advantage_and_no_loss(tmp_path, rewards_file, monkeypatch):
    learned: list[int] = []
    real = Learner.grpo_update

    def recording(self, batch, cfg, step):
        learned.append(len(batch))
        return real(self, batch, cfg, step)

    monkeypatch.setattr(Learner, "grpo_update", recording)
    result = train(_cfg(tmp_path, f"{rewards_file}:flaky_digits"))
    samples = read_jsonl(result.run_dir / "samples.jsonl")
    failed = [s for s in samples if s["failed"]]
    assert 0 < len(failed) < len(samples)  # the reward failed on some samples, not all
    assert all(s["advantage"] == 0.0 for s in failed)  # no signal from a failure
    assert all(s["components"]["flaky"] is None for s in failed)  # never a 0 that looks like a score
    for step, rec in enumerate(result.history):
        assert learned[step] == 16 - rec["failed_samples"]  # excluded from the loss (and its normaliser)
    assert sum(r["failed_samples"] for r in result.history) == result.history[-1]["reward_failures/flaky"]
    # the scored samples of a group are centred among themselves, not against the failed ones
    for step in {s["step"] for s in samples}:
        for idx in {s["index"] for s in samples if s["step"] == step}:
            ok = [s for s in samples if s["step"] == step and s["index"] == idx and not s["failed"]]
            if len(ok) >= 2 and len({s["reward"] for s in ok}) > 1:
                assert abs(sum(s["advantage"] for s in ok)) < 1e-4


def test_a_reward_failing_on_every_sample_stops_the_run_with_exit_2(tmp_path, rewards_file, capsys):
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text(
        "model: {spec: tiny-random, quant: none, lora: {r: 4, alpha: 8}}\n"
        "data: {source: arithmetic, limit: 24}\n"
        "sampling: {group_size: 4, max_new_tokens: 6}\n"
        "grpo: {steps: 3, prompts_per_step: 2, lr: 0.01}\n"
        f"rewards: [{{name: '{rewards_file}:always_fails', label: verifier}}]\n"
        "checkpoint: {every: 1}\n"
        f"log: {{live: false}}\nrun_dir: {tmp_path / 'run'}\n")
    capsys.readouterr()
    assert main(["grpo", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    line = [x for x in err if x.startswith("rltk: error:")]
    assert len(line) == 1
    assert "reward 'verifier' failed on every sample of step 1 (8 of 8" in line[0]
    assert "the verifier is misconfigured" in line[0]
    assert list_checkpoints(tmp_path / "run") == []  # stopped before step 1 trained: nothing half-written
    assert not (tmp_path / "run" / "adapter").exists()


def test_the_stop_can_wait_for_consecutive_steps(tmp_path, rewards_file):
    cfg = _cfg(tmp_path, f"{rewards_file}:always_fails", reward_fail_steps=2)
    from rltk.core.errors import UserError

    with pytest.raises(UserError, match=r"failed on every sample of 2 steps in a row up to step 2"):
        train(cfg)
    lines = read_jsonl(Path(cfg.run_dir) / "metrics.jsonl")
    assert [r["step"] for r in lines] == [1] and lines[0]["failed_samples"] == 16 and lines[0]["optimizer_steps"] == 0


def test_masked_advantages_ignore_failed_samples_in_every_estimator():
    from rltk.advantages import compute_advantages

    rewards = torch.tensor([[1.0, 0.0, 1e6, 0.0, 1.0], [2.0, 2.0, 2.0, -7.0, 2.0]])
    valid = torch.tensor([[True, True, False, True, True], [True, True, True, False, True]])
    for name in ("grpo", "dr_grpo", "rloo", "batch_std"):
        adv = compute_advantages(name, rewards, valid)
        assert adv[0, 2] == 0 and adv[1, 3] == 0  # failed: no advantage
        assert torch.all(adv[1] == 0)  # the scored samples of group 2 are all equal: no signal
        ref = compute_advantages(name, rewards[:1, [0, 1, 3, 4]]) if name != "batch_std" else None
        if ref is not None:
            torch.testing.assert_close(adv[0, [0, 1, 3, 4]], ref[0])
