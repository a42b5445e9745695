"""Running an eval: rows → prompts → batched generation → reward scores → records and metrics.

:func:`evaluate` is the library call (the CLI and the GRPO job both use it) and works on an
already-loaded policy::

    from rltk.models import load_policy
    from evals import evaluate
    pol = load_policy("smollm2-135m", quant="none", trainable=False)
    greedy = evaluate(pol, "arithmetic", limit=300)                            # accuracy, Wilson CI
    sampled = evaluate(pol, "arithmetic", limit=300, n_samples=8, temperature=1.0)  # pass@1..8, maj@k
    greedy.save("runs/eval/base.json")

An :class:`EvalResult` holds the run's config, one record per item (prompt, completions,
extracted answers, scores) and the metrics; same policy + same arguments give the same result.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rltk.core.rows import Rows, read_rows
from evals.generation import GenerationSettings, GenerationStats, generate, render_prompts
from evals.metrics import (
    classification_report,
    default_ks,
    majority_at_k,
    mean_interval,
    pass_at_k,
    wilson_interval,
)
from evals.tasks import Task, get_task, item_hash
from rltk.core.errors import UserError

RESULT_FORMAT = "rltk-eval/1"


@dataclass
class EvalResult:
    """One eval run. ``records[i]`` is one item; ``metrics`` the summary; ``config`` how it was made."""

    task: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    records: list[dict[str, Any]]
    path: str | None = None  # where it was saved or loaded from

    @property
    def n_samples(self) -> int:
        return int(self.config["n_samples"])

    @property
    def item_scores(self) -> list[float]:
        """Per-item primary score: 0/1 correctness (greedy), per-item pass@1 (sampled), or the graded score."""
        return [float(r["score"]) for r in self.records]

    @property
    def binary(self) -> bool:
        """Item scores are 0/1 (greedy, one sample, a task with a correctness component)."""
        return bool(self.config.get("binary")) and self.n_samples == 1

    def to_dict(self) -> dict[str, Any]:
        return {"format": RESULT_FORMAT, "task": self.task, "config": self.config, "metrics": self.metrics, "records": self.records}

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON (atomically: a temporary file renamed into place)."""
        p = Path(path).expanduser()
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
        tmp.replace(p)
        self.path = str(p)
        return p


def _json_default(o: Any) -> Any:
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def load_result(path: str | Path) -> EvalResult:
    """Read a result JSON written by :meth:`EvalResult.save`; UserError when it is not one."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"result file not found: {path}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a JSON eval result ({e})") from e
    if not isinstance(data, dict) or data.get("format") != RESULT_FORMAT:
        raise UserError(f"{path}: not an rltk eval result (expected \"format\": \"{RESULT_FORMAT}\")")
    for key in ("task", "config", "metrics", "records"):
        if key not in data:
            raise UserError(f"{path}: eval result lacks '{key}'")
    for i, r in enumerate(data["records"]):
        missing = [k for k in ("id", "item_hash", "score") if k not in r]
        if missing:
            raise UserError(f"{path}: record {i} lacks '{missing[0]}'")
    return EvalResult(data["task"], data["config"], data["metrics"], data["records"], path=str(p))


# ----------------------------------------------------------------------------- evaluate


def _resolve_temperature(n_samples: int, temperature: float | None) -> float:
    if temperature is None:
        return 0.0 if n_samples == 1 else 1.0
    return float(temperature)


def _pick_demos(task: Task, k: int, rows: Rows, eval_rows: Rows, data: str | None, few_shot_data: str | None,
                seed: int, from_source: bool = True) -> list[dict]:
    """``k`` demo rows, never one of the evaluated items: from ``few_shot_data``, else the task's
    demo source (e.g. the training split; only when ``from_source``, i.e. the rows came from the
    task's own source), else the source rows that are not being evaluated."""
    if k <= 0:
        return []
    if task.demo is None:
        raise UserError(f"task {task.name} has no demo answers, so it cannot be run few-shot")
    pool = None
    if few_shot_data is not None:
        pool = read_rows(few_shot_data)
    elif task.demo_source is not None and from_source:
        pool = task.demo_source(data)
    if pool is None:
        pool = rows
    pool.require(task.fields, f"task {task.name} (few-shot demos) needs {', '.join(task.fields)}")
    taken = {item_hash(r) for r in eval_rows.rows}
    taken_q = {task.user(r) for r in eval_rows.rows}
    candidates = [r for r in pool.rows if item_hash(r) not in taken and task.user(r) not in taken_q]
    if len(candidates) < k:
        raise UserError(
            f"task {task.name}: only {len(candidates)} rows for {k} few-shot demos outside the evaluated items "
            "(lower --few-shot or --limit, or give --few-shot-data)"
        )
    return random.Random(f"demos-{seed}").sample(candidates, k)


def evaluate(
    policy: Any,
    task: Task | str,
    *,
    rows: Sequence[dict[str, Any]] | Rows | None = None,
    data: str | None = None,
    limit: int | None = None,
    shuffle: bool = False,
    n_samples: int = 1,
    temperature: float | None = None,
    top_p: float = 1.0,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    ks: Sequence[int] | None = None,
    few_shot: int = 0,
    few_shot_data: str | None = None,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
    reward_timeout_s: float = 5.0,
) -> EvalResult:
    """Evaluate ``policy`` (a :class:`rltk.models.Policy`) on ``task``.

    Rows come from ``rows`` (e.g. the GRPO job's held-out items), else ``data`` (a local file),
    else the task's own source. ``n_samples == 1`` with ``temperature`` None or 0 is greedy
    decoding (accuracy, Wilson CI); ``n_samples > 1`` samples at ``temperature`` (default 1.0) and
    reports unbiased pass@k and maj@k for ``ks`` (default 1, 2, 4, ... n). ``meta`` is merged into
    the recorded config (e.g. the adapter path). The model's train/eval mode is restored afterwards.
    """
    t_start = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    temperature = _resolve_temperature(n_samples, temperature)
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens or task.max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        n_samples=n_samples,
        batch_size=batch_size,
        seed=seed,
    )
    binary = not task.graded
    ks = sorted(set(ks)) if ks else (default_ks(n_samples) if binary else [])
    for k in ks:
        if k < 1 or k > n_samples:
            raise UserError(f"pass@{k} needs at least {k} samples per item, got --samples {n_samples} (lower --k or raise --samples)")

    # rows
    if rows is None:
        source = task.load(data)
    elif isinstance(rows, Rows):
        source = rows
    else:
        rows = list(rows)
        source = Rows(rows, [f"rows[{i}]" for i in range(len(rows))], "in-memory rows")
    if not len(source):
        raise UserError(f"task {task.name}: no rows in {source.source}")
    task.check_rows(source)
    ids_all = [task.item_id(r, i) for i, r in enumerate(source.rows)]
    if len(set(ids_all)) != len(ids_all):  # ids must identify items for comparisons; fall back to positions
        ids_all = [f"{task.name}-{i:05d}" for i in range(len(source.rows))]
    positions = list(range(len(source.rows)))
    if shuffle:
        random.Random(f"rows-{seed}").shuffle(positions)
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be >= 1, got {limit}")
        positions = positions[:limit]
    chosen = source.select(positions)
    # demos come from the task's demo source (e.g. the training split) when the rows came from a
    # source (not a list handed over in memory, whose origin we cannot know)
    demos = _pick_demos(task, few_shot, source, chosen, data, few_shot_data, seed, from_source=rows is None or isinstance(rows, Rows))

    # generate
    messages = [task.messages(r, demos) for r in chosen.rows]
    prompts = render_prompts(policy, messages)
    stats = GenerationStats()
    completions = _generate_with_progress(policy, prompts, settings, stats, progress, task.name)

    # score (every sample of every item in one RewardSet call)
    t_score = time.perf_counter()
    reward_set = task.reward_set(timeout_s=reward_timeout_s)
    flat_text = [c.text for comps in completions for c in comps]
    row_of = [i for i, comps in enumerate(completions) for _ in comps]
    columns = sorted({k for r in chosen.rows for k in r})
    cols = {k: [chosen.rows[i].get(k) for i in row_of] for k in columns}
    cols["prompts"] = [messages[i] for i in row_of]
    scores = reward_set.score(flat_text, **cols)
    score_seconds = time.perf_counter() - t_score

    # records
    records: list[dict[str, Any]] = []
    flat = 0
    for i, (row, comps) in enumerate(zip(chosen.rows, completions)):
        samples = []
        for c in comps:
            comp_scores = {lab: scores.components[lab][flat] for lab in reward_set.labels}
            correct = None
            if binary:
                v = comp_scores.get(task.correct)
                correct = None if v is None else bool(v >= 1.0)
                sample_score = 1.0 if correct else 0.0
            else:
                sample_score = task.graded_score(comp_scores)
            fmt = comp_scores.get(task.format) if task.format else None
            samples.append(
                {
                    "completion": c.text,
                    "answer": task.extract(c.text),
                    "correct": correct,
                    "score": sample_score,
                    "format_ok": None if fmt is None else bool(fmt >= 1.0),
                    "scores": comp_scores,
                    "total": scores.total[flat],
                    "tokens": c.tokens,
                    "truncated": c.truncated,
                }
            )
            flat += 1
        n_correct = sum(1 for s in samples if s["correct"]) if binary else None
        item_score = sum(s["score"] for s in samples) / len(samples)
        records.append(
            {
                "id": ids_all[positions[i]],
                "where": chosen.where[i],
                "item_hash": item_hash(row),
                "prompt": prompts[i],
                "gold": task.gold(row),
                **({"label": str(row.get("label", "")).strip()} if task.labels else {}),
                "n_correct": n_correct,
                "score": item_score,
                "samples": samples,
            }
        )

    config = {
        "task": task.name,
        "task_options": task.options,
        "data": source.source,
        "model": getattr(policy, "spec", None),
        "quant": getattr(policy, "quant", None),
        "limit": limit,
        "shuffle": shuffle,
        "n_samples": n_samples,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": settings.max_new_tokens,
        "batch_size": batch_size,
        "seed": seed,
        "ks": ks,
        "few_shot": few_shot,
        "few_shot_data": few_shot_data,
        "demo_ids": [task.item_id(d, -1) for d in demos] if demos else [],
        "binary": binary,
        "rewards": [{"name": s.name, "label": s.key, "weight": s.weight, "params": dict(s.params)} for s in task.rewards],
        "correct": task.correct,
        "format": task.format,
        **(meta or {}),
    }
    metrics = compute_metrics(records, ks=ks, binary=binary, labels=task.labels, reward_labels=reward_set.labels)
    metrics["reward_failures"] = dict(scores.failures)
    metrics["timing"] = {
        "generation_seconds": stats.seconds,
        "scoring_seconds": score_seconds,
        "wall_seconds": time.perf_counter() - t_start,
        "generated_tokens": stats.tokens,
        "prompt_tokens": stats.prompt_tokens,
        "items_per_s": len(records) / stats.seconds if stats.seconds > 0 else None,
        "tokens_per_s": stats.tokens / stats.seconds if stats.seconds > 0 else None,
    }
    return EvalResult(task.name, config, metrics, records)


def _generate_with_progress(policy: Any, prompts: list[str], settings: GenerationSettings, stats: GenerationStats,
                            show: bool, label: str) -> list:
    if not show:
        return generate(policy, prompts, settings, stats=stats)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        tid = bar.add_task(f"eval {label}", total=len(prompts), rate="")
        t0 = time.perf_counter()
        last = [0.0]

        def update(done: int, tokens: int) -> None:
            now = time.perf_counter()
            if now - last[0] < 0.2 and done < len(prompts):
                return
            last[0] = now
            dt = max(now - t0, 1e-9)
            bar.update(tid, completed=done, rate=f"{done / dt:.2f} items/s  {tokens / dt:.0f} tok/s")

        return generate(policy, prompts, settings, progress=update, stats=stats)


# ----------------------------------------------------------------------------- metrics


def compute_metrics(
    records: list[dict[str, Any]],
    ks: Sequence[int],
    binary: bool,
    labels: Sequence[str] = (),
    reward_labels: Sequence[str] = (),
) -> dict[str, Any]:
    """Summary metrics of a run from its records (pure: the records carry everything needed)."""
    n_items = len(records)
    samples = [s for r in records for s in r["samples"]]
    n_samples = len(records[0]["samples"]) if records else 0
    item_scores = [float(r["score"]) for r in records]
    m: dict[str, Any] = {"n_items": n_items, "n_samples": n_samples}
    mean = sum(item_scores) / n_items if n_items else 0.0
    if binary and n_samples == 1:
        successes = sum(1 for r in records if r["samples"][0]["correct"])
        m["accuracy"] = successes / n_items if n_items else 0.0
        m["accuracy_ci"] = list(wilson_interval(successes, n_items))
        m["ci_method"] = "wilson"
    elif binary:
        m["accuracy"] = mean  # mean per-item pass@1 = sampled accuracy
        m["accuracy_ci"] = list(mean_interval(item_scores))
        m["ci_method"] = "wilson over items, conservative"
    else:
        m["score"] = mean
        m["score_ci"] = list(mean_interval(item_scores))
        m["ci_method"] = "wilson over items, conservative"
    if binary and ks:
        m["pass@k"] = {str(k): sum(pass_at_k(n_samples, int(r["n_correct"]), k) for r in records) / n_items for k in ks}
        m["maj@k"] = {
            str(k): sum(
                majority_at_k([s["answer"] for s in r["samples"]], [bool(s["correct"]) for s in r["samples"]], k) for r in records
            )
            / n_items
            for k in ks
        }
    fmt = [s["format_ok"] for s in samples if s.get("format_ok") is not None]
    m["format_rate"] = sum(fmt) / len(fmt) if fmt else None
    m["mean_completion_tokens"] = sum(s["tokens"] for s in samples) / len(samples) if samples else 0.0
    m["truncated_rate"] = sum(1 for s in samples if s["truncated"]) / len(samples) if samples else 0.0
    comp: dict[str, Any] = {}
    for lab in reward_labels:
        vals = [s["scores"].get(lab) for s in samples]
        applicable = [v for v in vals if v is not None]
        comp[lab] = {
            "mean": sum(applicable) / len(applicable) if applicable else None,
            "applicable": len(applicable) / len(vals) if vals else 0.0,
        }
    m["rewards"] = comp
    if labels:
        gold = [r.get("label", "") for r in records]
        pred = [r["samples"][0]["answer"] for r in records]  # first sample (the greedy answer when greedy)
        rep = classification_report(gold, pred, labels)
        m["macro_f1"] = rep["macro_f1"]
        m["per_class"] = rep["per_class"]
    return m

