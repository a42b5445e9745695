"""Scoring an eval's completions with the task's rewards, and the per-item records that hold
them (what a result file lists for every item and sample)."""

from __future__ import annotations

from typing import Any, Sequence

from evals.reasoning import step_fields
from evals.tasks import Task, item_hash
from rewards import RewardScores, RewardSet
from rltk.core.rows import Rows


def score_samples(reward_set: RewardSet, rows: Rows, messages: Sequence[list[dict[str, str]]],
                  completions: Sequence[Sequence[Any]]) -> RewardScores:
    """Every sample of every item in one RewardSet call (each row's columns repeated per sample)."""
    flat_text = [c.text for comps in completions for c in comps]
    row_of = [i for i, comps in enumerate(completions) for _ in comps]
    columns = sorted({k for r in rows.rows for k in r})
    cols = {k: [rows.rows[i].get(k) for i in row_of] for k in columns}
    cols["prompts"] = [messages[i] for i in row_of]
    return reward_set.score(flat_text, **cols)


def _sample_record(task: Task, completion: Any, comp_scores: dict[str, float | None], total: float,
                   row: dict[str, Any]) -> dict[str, Any]:
    """One sample: its text, extracted answer, correctness (binary tasks) or graded score, and components."""
    correct = None
    if not task.graded:
        v = comp_scores.get(task.correct)
        correct = None if v is None else bool(v >= 1.0)
        sample_score = 1.0 if correct else 0.0
    else:
        sample_score = task.graded_score(comp_scores)
    fmt = comp_scores.get(task.format) if task.format else None
    return {
        "completion": completion.text,
        "answer": task.extract(completion.text),
        "correct": correct,
        "score": sample_score,
        "format_ok": None if fmt is None else bool(fmt >= 1.0),
        "scores": comp_scores,
        "total": total,
        "tokens": completion.tokens,
        "truncated": completion.truncated,
        **step_fields(completion.text, correct),
        **({"metrics": task.sample_metrics(completion.text, row)} if task.sample_metrics else {}),
    }


def build_records(task: Task, rows: Rows, ids: Sequence[str], prompts: Sequence[str],
                  completions: Sequence[Sequence[Any]], scores: RewardScores, labels: Sequence[str]) -> list[dict[str, Any]]:
    """One record per item (``ids[i]`` is the id of ``rows.rows[i]``): its samples, and the item
    score, the mean of its samples' scores (per-item pass@1 when sampled)."""
    binary = not task.graded
    records: list[dict[str, Any]] = []
    flat = 0
    for i, (row, comps) in enumerate(zip(rows.rows, completions)):
        samples = []
        for c in comps:
            comp_scores = {lab: scores.components[lab][flat] for lab in labels}
            samples.append(_sample_record(task, c, comp_scores, scores.total[flat], row))
            flat += 1
        records.append(
            {
                "id": ids[i],
                "where": rows.where[i],
                "item_hash": item_hash(row),
                "prompt": prompts[i],
                "gold": task.gold(row),
                **({"label": str(row.get("label", "")).strip()} if task.labels else {}),
                "n_correct": sum(1 for s in samples if s["correct"]) if binary else None,
                "score": sum(s["score"] for s in samples) / len(samples),
                "samples": samples,
            }
        )
    return records
