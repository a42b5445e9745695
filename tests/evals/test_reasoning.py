"""Reasoning metrics in every eval: steps found and checked per completion, validity, lucky answers,
their place in the summary and table, and the paired comparisons of ``rltk eval compare``."""

from __future__ import annotations

import json

import pytest

import evals.run as run_mod
from evals import evaluate
from evals.commands import cmd_compare  # noqa: F401 (the CLI below runs it)
from evals.generation import Completion
from evals.reasoning import compare_reasoning, reasoning_rows
from rltk.cli import main
from rltk.models import tiny_policy

ROWS = [{"id": f"r{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 7)]


def _scripted(monkeypatch, answers):
    def fake_generate(policy, prompts, settings, progress=None, stats=None):
        return [[Completion(text, tokens=len(text), truncated=False) for text in item] for item in answers]

    monkeypatch.setattr(run_mod, "generate", fake_generate)


SOUND = [[f"{i} + {i} = {2 * i}\n#### {2 * i}"] for i in range(1, 7)]
# item 1: right answer from a false step (lucky); item 2: wrong step and wrong answer; item 3: no steps
MIXED = [["1 + 1 = 3\n#### 2"], ["2 + 2 = 5\n#### 5"], ["#### 6"]] + SOUND[3:]


def test_every_sample_is_step_checked_and_summarised(monkeypatch):
    _scripted(monkeypatch, MIXED)
    r = evaluate(tiny_policy(), "arithmetic", rows=ROWS, progress=False)
    s = [rec["samples"][0] for rec in r.records]
    assert [x["steps"] for x in s] == [1, 1, 0, 1, 1, 1]
    assert [x["reasoning_valid"] for x in s] == [False, False, False, True, True, True]
    assert [x["lucky"] for x in s] == [True, False, False, False, False, False]
    assert s[0]["step_errors"] and "1 + 1" in s[0]["step_errors"][0]
    m = r.metrics["reasoning"]
    assert m["validity"] == pytest.approx(3 / 6) and m["lucky"] == pytest.approx(1 / 6)
    assert m["lucky_of_correct"] == pytest.approx(1 / 5)  # 5 right answers, one of them lucky
    assert m["steps_per_completion"] == pytest.approx(5 / 6) and m["shows_steps"] == pytest.approx(5 / 6)
    assert m["step_accuracy"] == pytest.approx(3 / 5)
    assert m["validity_ci"][0] < 0.5 < m["validity_ci"][1]
    names = [n for n, _ in reasoning_rows(r.metrics)]
    assert names == ["reasoning validity", "lucky answers", "steps per completion"]


def test_compare_pairs_reasoning_validity_and_lucky_answers(monkeypatch, tmp_path, capsys):
    _scripted(monkeypatch, MIXED)
    a = evaluate(tiny_policy(), "arithmetic", rows=ROWS, progress=False)
    _scripted(monkeypatch, SOUND)
    b = evaluate(tiny_policy(), "arithmetic", rows=ROWS, progress=False)
    valid, lucky = compare_reasoning(a, b)
    assert valid.metric == "reasoning validity" and valid.test == "exact McNemar"
    assert (valid.a_mean, valid.b_mean, len(valid.improved), len(valid.regressed)) == (0.5, 1.0, 3, 0)
    assert lucky.lower_is_better and lucky.diff < 0 and lucky.improved == [] and lucky.regressed == ["r1"]
    a.save(tmp_path / "a.json")
    b.save(tmp_path / "b.json")
    code = main(["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--output", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert code == 0 and "reasoning validity:" in out and "lucky answers:" in out
    saved = json.loads((tmp_path / "c.json").read_text())
    assert [c["metric"] for c in saved["reasoning"]] == ["reasoning validity", "lucky answers"]


def test_results_without_step_checks_still_compare(monkeypatch):
    _scripted(monkeypatch, SOUND)
    a = evaluate(tiny_policy(), "arithmetic", rows=ROWS, progress=False)
    for rec in a.records:  # a result file written before the step checks
        for s in rec["samples"]:
            for k in ("steps", "steps_valid", "reasoning_valid", "lucky", "step_errors"):
                s.pop(k)
    assert compare_reasoning(a, a) == []
