"""Where people look: one plain line per step when the output is not a terminal, TensorBoard on request."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltk.core.config import from_dict
from rltk.grpo import GRPOJobConfig, train
from rltk.metrics import LiveView, grpo_columns

BASE = {
    "model": {"spec": "tiny-random", "quant": "none", "lora": {"r": 4, "alpha": 8}},
    "data": {"source": "arithmetic", "limit": 24},
    "sampling": {"group_size": 4, "max_new_tokens": 6},
    "grpo": {"steps": 3, "prompts_per_step": 2, "lr": 0.01},
    "rewards": [{"name": "regex", "params": {"pattern": "[0-9]"}, "label": "digit"}],
    "checkpoint": {"every": 0},
}


def test_not_a_terminal_gets_one_plain_line_per_step(tmp_path, capsys):
    cfg = from_dict(GRPOJobConfig, {**BASE, "log": {"live": True}, "run_dir": str(tmp_path / "run")})
    train(cfg)  # pytest's captured stderr is not a terminal
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("GRPO step ")]
    assert [x.split()[2] for x in lines] == ["1/3", "2/3", "3/3"]
    assert all("reward " in x and "digit " in x and "s/step " in x and "ETA " in x for x in lines)
    assert lines[-1].endswith("ETA 0s")


def test_live_false_prints_no_step_lines(tmp_path, capsys):
    train(from_dict(GRPOJobConfig, {**BASE, "log": {"live": False}, "run_dir": str(tmp_path / "run")}))
    assert "GRPO step" not in capsys.readouterr().err


def test_plain_line_shows_the_columns_and_an_eta():
    view = LiveView(10, 0, "GRPO", grpo_columns(["correct"]), enabled=True)
    line = view.plain_line({"step": 1, "reward_mean": 0.5, "reward/correct": 0.25, "seconds/step": 12.0})
    assert line.startswith("GRPO step 1/10  reward 0.500  correct 0.250") and "ETA 1m48s" in line


def test_tensorboard_event_files_hold_the_step_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(from_dict(GRPOJobConfig, {**BASE, "log": {"live": False, "tensorboard": True},
                                             "run_dir": str(tmp_path / "run")}))
    folder = Path(result.run_dir) / "tensorboard"
    acc = EventAccumulator(str(folder))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"reward_mean", "reward/digit", "seconds/step", "loss"} <= tags
    assert [e.step for e in acc.Scalars("reward_mean")] == [1, 2, 3]
    assert [e.value for e in acc.Scalars("reward_mean")] == [pytest.approx(h["reward_mean"]) for h in result.history]
