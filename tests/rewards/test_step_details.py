"""The step_check reward and per-sample details: report_detail -> RewardScores.details -> `rltk reward score`
output (JSONL and table) -> GRPO sample records -> Ray share merging."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rewards import RewardScores, RewardSet, RewardSpec, collect_details, get_reward, report_detail
from rltk.cli import main
from rltk.grpo.record import sample_records
from rltk.grpo.scoring import score_groups
from rltk.rollouts import RolloutGroup
from rltk.rollouts.ray_rewards import merge_scores

GOOD = "Time = 120 / 40 = 3 hours.\nCost = 3 × $4 = $12\n#### 12"
ONE_WRONG = "Time = 120 / 40 = 4 hours.\nCost = 4 × $4 = $16\n#### 16"
LUCKY = "Time = 120 / 40 = 4 hours.\nCost = 3 × $4 = $12\n#### 12"
NO_STEPS = "I think it is 12.\n#### 12"


@pytest.mark.parametrize("params, expected", [
    ({}, [1.0, 0.5, 0.5, 0.0]),
    ({"mode": "all"}, [1.0, 0.0, 0.0, 0.0]),
    ({"mode": "all", "no_steps": -1.0}, [1.0, 0.0, 0.0, -1.0]),
    ({"mode": "with_answer"}, [1.0, 0.0, 0.0, 0.0]),
    ({"mode": "with_answer", "lucky": 0.3}, [1.0, 0.0, 0.3, 0.0]),
])
def test_step_check_modes(params, expected):
    fn = get_reward("step_check", **params)
    golds = ["#### 12"] * 4
    assert fn([GOOD, ONE_WRONG, LUCKY, NO_STEPS], answer=golds) == expected


def test_with_answer_needs_the_gold_column_and_bad_params_fail():
    rs = RewardSet([RewardSpec("step_check", params={"mode": "with_answer", "gold_column": "solution"})])
    assert rs.required_columns() == {"solution"}
    assert RewardSet([RewardSpec("step_check")]).required_columns() == set()
    with pytest.raises(Exception, match="mode"):
        get_reward("step_check", mode="most")


def test_report_detail_outside_collection_is_ignored_and_nests():
    report_detail(0, {"x": 1})  # no collector: nothing happens
    with collect_details() as outer:
        report_detail(0, {"a": 1})
        with collect_details() as inner:
            report_detail(1, {"b": 2})
    assert outer == [(0, {"a": 1})] and inner == [(1, {"b": 2})]


def test_reward_set_keeps_details_per_label_and_sample():
    rs = RewardSet([RewardSpec("step_check", label="steps"), RewardSpec("math_answer")])
    s = rs.score([GOOD, ONE_WRONG, NO_STEPS], answer=["#### 12", "#### 12", "#### 12"])
    assert list(s.details) == ["steps"]  # math_answer reports none
    good, wrong, none = s.details["steps"]
    assert good == {"steps": 2, "valid": 2, "wrong": []} and none == {"steps": 0, "valid": 0, "wrong": []}
    assert wrong["wrong"][0] == {"n": 1, "at": [7, 19], "step": "120 / 40 = 4", "reason": "120 / 40 is 3, not 4"}
    assert RewardScores([1.0], {"r": [1.0]}, {"r": 0}, {"r": 0.0}).details == {}


def test_details_survive_the_per_sample_retry():
    calls = []

    class Flaky:
        """Reports a detail per sample; the batch call fails, so run_inline retries row by row."""

        def __call__(self, completions, **kw):
            calls.append(len(completions))
            for i, c in enumerate(completions):
                report_detail(i, {"text": c})
            if len(completions) > 1:
                raise RuntimeError("batch fails")
            return [1.0]

    rs = RewardSet([RewardSpec(Flaky(), label="x")])  # a local class: called in-process, like a built-in
    s = rs.score(["a", "b", "c"])
    assert calls == [3, 1, 1, 1] and s.components["x"] == [1.0, 1.0, 1.0]
    assert s.details["x"] == [{"text": "a"}, {"text": "b"}, {"text": "c"}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_reward_score_cli_writes_details_and_notes(tmp_path, capsys):
    inp = write_jsonl(tmp_path / "rows.jsonl", [{"completion": c, "answer": "#### 12"} for c in (GOOD, ONE_WRONG)])
    out = tmp_path / "scored.jsonl"
    assert main(["reward", "score", "--reward", "step_check", "--reward", "format_answer",
                 "--input", str(inp), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rewards"]["step_check"] for r in rows] == [1.0, 0.5]
    assert rows[1]["details"]["step_check"]["wrong"][0]["reason"] == "120 / 40 is 3, not 4"
    assert list(rows[0]["details"]) == ["step_check"]  # format_answer reports none
    table = capsys.readouterr().out
    assert "step 1 wrong: 120 / 40 is 3, not 4" in table
    # without a detail-reporting reward there is no details key
    assert main(["reward", "score", "--reward", "format_answer", "--input", str(inp), "--output", str(out)]) == 0
    assert all("details" not in json.loads(line) for line in out.read_text().splitlines())


def test_reward_score_cli_subprocess_on_hostile_rows(tmp_path):
    rows = [{"completion": "9^9^9 = 1 and " + "1" * 10_000 + " = 2"}, {"completion": "1+1=2\n" * 17_000},
            {"completion": "(" * 5000 + "1" + ")" * 5000 + " = 1"}, {"completion": "__import__('os') = 0, 2 * 3 = 7"}]
    inp = write_jsonl(tmp_path / "hostile.jsonl", rows)
    out = tmp_path / "out.jsonl"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rltk", "reward", "score", "--reward", "step_check",
                           "--input", str(inp), "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(scored) == 4 and scored[3]["details"]["step_check"]["wrong"][0]["reason"] == "2 * 3 is 6, not 7"
    assert "step 1 wrong: 2 * 3 is 6, not 7" in proc.stdout
    assert time.perf_counter() - t0 < 60


def group(row: dict, texts: list[str]) -> RolloutGroup:
    ids = [[7] * (i + 1) for i in range(len(texts))]
    return RolloutGroup(3, row, [5, 6], ids, [[-0.1] * len(x) for x in ids], texts, [False] * len(texts), policy_version=0)


def test_grpo_sample_records_carry_details():
    rs = RewardSet([RewardSpec("step_check", params={"mode": "with_answer"}, label="steps"), RewardSpec("format_answer")])
    groups = [group({"question": "q1", "answer": "#### 12"}, [GOOD, ONE_WRONG]), group({"question": "q2", "answer": "#### 5"}, [NO_STEPS])]
    scored, scores = score_groups(rs, groups)
    assert scored[0].details["steps"][1]["wrong"][0]["step"] == "120 / 40 = 4" and len(scored[1].details["steps"]) == 1
    records = sample_records(7, scored, torch.zeros(2, 2), n_groups=2)
    assert [r["components"]["steps"] for r in records] == [1.0, 0.0, 0.0]
    assert records[1]["details"]["steps"]["wrong"][0]["reason"] == "120 / 40 is 3, not 4"
    assert records[0]["details"]["steps"]["answer_ok"] is True and records[2]["details"]["steps"]["answer_ok"] is False
    json.dumps(records)
    plain = RewardSet([RewardSpec("format_answer")])
    records = sample_records(1, score_groups(plain, groups)[0], torch.zeros(2, 2), n_groups=2)
    assert all("details" not in r for r in records)


def test_merge_scores_keeps_details_in_order():
    rs = RewardSet([RewardSpec("step_check"), RewardSpec("format_answer")])
    texts = [GOOD, ONE_WRONG, NO_STEPS]
    whole = rs.score(texts)
    merged = merge_scores([rs.score(texts[:2]), rs.score(texts[2:])], [0, 2])
    assert merged.details == whole.details and merged.components == whole.components
    no_details = RewardScores([0.0], {"step_check": [0.0], "format_answer": [0.0]}, {"step_check": 0, "format_answer": 0},
                              {"step_check": 0.0, "format_answer": 0.0})
    assert merge_scores([rs.score(texts[:1]), no_details], [0, 1]).details["step_check"] == [whole.details["step_check"][0], None]
