"""The job summary's reasoning columns: a graded task with no arithmetic step anywhere (a legal summary) gets no
reasoning validity / lucky answers (they would read 0%, as if every summary reasoned wrongly)."""

from __future__ import annotations

from types import SimpleNamespace

from rltk.commands import print_job
from rltk.grpo.job import _reasoning_summary


def _evals(steps: float, graded: bool) -> dict:
    def result() -> SimpleNamespace:
        metrics = {"reasoning": {"validity": 0.0, "lucky": None, "steps_per_completion": steps}}
        metrics.update({"score": 0.3} if graded else {"accuracy": 0.3})
        return SimpleNamespace(metrics=metrics)

    return {s: {"greedy": result(), "sampled": None} for s in ("base", "sft", "grpo")}


def test_a_graded_task_without_steps_has_no_reasoning_columns(capsys):
    stages = ["base", "sft", "grpo"]
    assert _reasoning_summary(_evals(0.0, graded=True), stages, None) == {}
    kept = _reasoning_summary(_evals(1.5, graded=True), stages, None)  # summaries that do arithmetic are checked
    assert kept["reasoning_validity"] == {"base": 0.0, "sft": 0.0, "grpo": 0.0}
    math = _reasoning_summary(_evals(0.0, graded=False), stages, None)  # a math task: 0 steps is a finding
    assert math["steps_per_completion"] == {"base": 0.0, "sft": 0.0, "grpo": 0.0}
    summary = {"score": {"base": 0.2, "sft": 0.3}, "score_sampled": {"base": None, "sft": 0.1},
               "accuracy": {"base": 0.2, "sft": 0.3}, "format_rate": {"base": 0.5, "sft": 0.9}, "eval_samples": 4,
               "n_eval_items": 83, "seed": 0}
    print_job(summary)
    out = capsys.readouterr().out
    assert "score (greedy)" in out and "valid" not in out and "lucky" not in out
