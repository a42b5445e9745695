"""TRL users' reward functions as they are: a GRPO run on conversational data with TRL's own
think_format_reward and accuracy_reward, what score_groups passes them, and a reward that always raises."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import yaml

import rltk.grpo.loop
from rewards import RewardSet, RewardSpec
from rltk.cli import main
from rltk.core.config import from_dict
from rltk.grpo import GRPOJobConfig, train
from rltk.grpo.scoring import score_groups, trainer_state
from rltk.metrics import read_jsonl
from rltk.rollouts import RolloutGroup

trl = pytest.importorskip("trl")

RECORDER = '''
def record(completions, prompts, completion_ids, trainer_state, **kwargs):
    """1.0 for a conversational completion and a TrainerState-like state at global_step S: returns 100 * S + 1."""
    chat = [isinstance(c, list) and c[0]["role"] == "assistant" for c in completions]
    return [100.0 * trainer_state.global_step + trainer_state.max_steps / 100 + float(ok) for ok in chat]
'''


def conversational_rows(path: Path, n: int = 8) -> Path:
    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i + 1}?"}], "solution": str(2 * i + 1)} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def job(tmp_path: Path, rewards: list[dict], steps: int = 2) -> dict:
    return {
        "model": {"spec": "tiny-random", "quant": "none", "lora": {"r": 8, "alpha": 16}},
        "data": {"source": str(conversational_rows(tmp_path / "rows.jsonl"))},
        "sampling": {"group_size": 4, "max_new_tokens": 8},
        "grpo": {"steps": steps, "prompts_per_step": 2, "lr": 0.02, "micro_batch_size": 8},
        "rewards": rewards,
        "checkpoint": {"every": 0}, "log": {"live": False},
        "run_dir": str(tmp_path / "run"),
    }


def test_grpo_with_trl_rewards_unchanged(tmp_path):
    pytest.importorskip("math_verify")
    rewards = [{"name": "trl.rewards:think_format_reward", "label": "think"},
               {"name": "trl.rewards:accuracy_reward", "label": "accuracy"}]
    result = train(from_dict(GRPOJobConfig, job(tmp_path, rewards)))
    lines = read_jsonl(result.run_dir / "metrics.jsonl")
    assert [r["step"] for r in lines] == [1, 2]
    for r in lines:  # TRL's functions read completion[0]["content"]: they got conversational completions
        assert r["reward_failures/think"] == 0 and r["reward_failures/accuracy"] == 0
        assert 0.0 <= r["reward/think"] <= 1.0 and 0.0 <= r["reward/accuracy"] <= 1.0


def group(row: dict, texts: list[str]) -> RolloutGroup:
    ids = [[7] * (i + 1) for i in range(len(texts))]
    return RolloutGroup(0, row, [5, 6], ids, [[-0.1] * len(x) for x in ids], texts, [False] * len(texts), policy_version=0)


def test_score_groups_passes_what_trl_passes(tmp_path):
    path = tmp_path / "recorder.py"
    path.write_text(RECORDER)
    rs = RewardSet([RewardSpec(f"{path}:record", label="rec")])
    chat_row = {"prompt": [{"role": "user", "content": "1+1?"}], "solution": "2"}
    text_row = {"question": "1+1?", "solution": "2"}
    messages = [[{"role": "user", "content": "1+1?"}]] * 2
    groups = [group(chat_row, ["a", "b"]), group(text_row, ["c"])]
    _, s = score_groups(rs, groups, messages, trainer_state=trainer_state(4, 10, 0.5))
    # conversational where the row's prompt is a list of messages, text where a template made the chat prompt
    assert s.components["rec"] == [401.1, 401.1, 400.1] and s.failures["rec"] == 0
    seen = []
    RewardSet([RewardSpec(lambda completions, **kw: seen.append(kw) or [0.0] * len(completions), label="r")]).score(
        ["x"], prompts=messages[:1], completion_ids=[[1]], trainer_state=trainer_state(4, 10, 0.5))
    assert seen[0]["trainer_state"].epoch == 0.5


@pytest.mark.skipif("trainer_state=" not in inspect.getsource(rltk.grpo.loop),
                    reason="rltk/grpo/loop.py does not pass trainer_state to score_groups yet")
def test_rewards_see_the_step_in_training(tmp_path):
    path = tmp_path / "recorder.py"
    path.write_text(RECORDER)
    result = train(from_dict(GRPOJobConfig, job(tmp_path, [{"name": f"{path}:record", "label": "rec"}])))
    lines = read_jsonl(result.run_dir / "metrics.jsonl")
    assert [r["reward/rec"] for r in lines] == pytest.approx([1.02, 101.02])  # global_step 0 then 1, max_steps 2


def test_a_reward_that_always_raises_stops_the_run_with_exit_2(tmp_path, capsys):
    path = tmp_path / "broken.py"
    path.write_text("def broken(completions, **kwargs):\n    raise ValueError('no scores today')\n")
    cfg = job(tmp_path, [{"name": "trl.rewards:think_format_reward", "label": "think"},
                         {"name": f"{path}:broken", "label": "broken"}])
    config = tmp_path / "grpo.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["grpo", str(config)]) == 2
    err = capsys.readouterr().err
    assert "reward 'broken' failed on every sample of step 1" in err and "no scores today" in err
