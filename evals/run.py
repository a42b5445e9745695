"""Running an eval: rows → prompts → batched generation → reward scores → records and metrics.

:func:`evaluate` is the library call (the CLI and the GRPO job both use it) and works on an
already-loaded policy::

    from rltk.policy import load_policy
    from evals import evaluate
    pol = load_policy("smollm2-135m", quant="none", trainable=False)
    greedy = evaluate(pol, "arithmetic", limit=300)                            # accuracy, Wilson CI
    sampled = evaluate(pol, "arithmetic", limit=300, n_samples=8, temperature=1.0)  # pass@1..8, maj@k
    greedy.save("runs/eval/base.json")

An :class:`EvalResult` holds the run's config, one record per item (prompt, completions,
extracted answers, scores) and the metrics; same policy + same arguments give the same result.
The steps live beside this module: :mod:`evals.items` (which rows, few-shot demos),
:mod:`evals.records` (scoring, per-item records), :mod:`evals.metrics` (the summary),
:mod:`evals.result` (the result and its file).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from evals.generation import GenerationSettings, GenerationStats, generate, render_prompts
from evals.items import chosen_positions, item_ids, pick_demos, source_rows
from evals.metrics import compute_metrics, default_ks
from evals.records import build_records, score_samples
from evals.result import EvalResult
from evals.tasks import Task, get_task
from rltk.core.errors import UserError
from rltk.core.rows import Rows
from rltk.policy import parallel


def resolve_temperature(n_samples: int, temperature: float | None) -> float:
    """The sampling temperature: as given, else 0 (greedy) for one sample and 1.0 for several."""
    if temperature is None:
        return 0.0 if n_samples == 1 else 1.0
    return float(temperature)


def decode_settings(task: Task, *, n_samples: int, temperature: float | None, top_p: float, max_new_tokens: int | None,
                    batch_size: int, seed: int, decode_threads: int = 0) -> GenerationSettings:
    """The run's decoding settings (checked: a UserError for bad values); the task's
    ``max_new_tokens`` unless given, the temperature from :func:`resolve_temperature`."""
    return GenerationSettings(max_new_tokens=max_new_tokens or task.max_new_tokens, temperature=resolve_temperature(n_samples, temperature),
                              top_p=top_p, n_samples=n_samples, batch_size=batch_size, seed=seed, threads=decode_threads)


def check_ks(ks: Sequence[int], n_samples: int) -> None:
    """UserError for the first k (in the order given) that ``n_samples`` samples per item cannot give."""
    for k in ks:
        if k < 1 or k > n_samples:
            raise UserError(f"pass@{k} needs at least {k} samples per item, got --samples {n_samples} (lower --k or raise --samples)")


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
    decode_threads: int = 0,
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
    settings = decode_settings(task, n_samples=n_samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                               batch_size=batch_size, seed=seed, decode_threads=decode_threads)
    ks = sorted(set(ks)) if ks else (default_ks(n_samples) if not task.graded else [])
    check_ks(ks, n_samples)
    # the items: every check of the input is done before generation starts
    source = source_rows(task, rows, data)
    ids, positions = item_ids(task, source), chosen_positions(len(source), limit, shuffle, seed)
    chosen = source.select(positions)
    # demos come from the task's demo source (e.g. the training split) when the rows came from a
    # source (not a list handed over in memory, whose origin we cannot know)
    demos = pick_demos(task, few_shot, source, chosen, data, few_shot_data, seed, from_source=rows is None or isinstance(rows, Rows))
    # generate, then score every sample of every item in one RewardSet call
    messages = [task.messages(r, demos) for r in chosen.rows]
    prompts = render_prompts(policy, messages)
    stats = GenerationStats()
    completions = _generate_with_progress(policy, prompts, settings, stats, progress, task.name)
    t_score = time.perf_counter()
    reward_set = task.reward_set(timeout_s=reward_timeout_s)
    scores = score_samples(reward_set, chosen, messages, completions)
    score_seconds = time.perf_counter() - t_score
    # one record per item, the run's config and its summary
    records = build_records(task, chosen, [ids[p] for p in positions], prompts, completions, scores, reward_set.labels)
    config = _run_config(task, policy, source.source, settings, ks, demos, limit=limit, shuffle=shuffle, few_shot=few_shot,
                         few_shot_data=few_shot_data, meta=meta)
    metrics = compute_metrics(records, ks=ks, binary=not task.graded, labels=task.labels, reward_labels=reward_set.labels)
    metrics["reward_failures"] = dict(scores.failures)
    metrics["timing"] = _timing(stats, len(records), score_seconds, time.perf_counter() - t_start)
    return EvalResult(task.name, config, metrics, records)


def _run_config(task: Task, policy: Any, data: str, settings: GenerationSettings, ks: list[int], demos: list[dict], *,
                limit: int | None, shuffle: bool, few_shot: int, few_shot_data: str | None,
                meta: dict[str, Any] | None) -> dict[str, Any]:
    """How the run was made, as recorded in its result (``meta`` merged in last)."""
    return {
        "task": task.name,
        "task_options": task.options,
        "data": data,
        "model": getattr(policy, "spec", None),
        "quant": getattr(policy, "quant", None),
        "limit": limit,
        "shuffle": shuffle,
        "n_samples": settings.n_samples,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_new_tokens": settings.max_new_tokens,
        "batch_size": settings.batch_size,
        "decode_threads": parallel.thread_count(policy.device, settings.threads),
        "seed": settings.seed,
        "ks": ks,
        "few_shot": few_shot,
        "few_shot_data": few_shot_data,
        "demo_ids": [task.item_id(d, -1) for d in demos] if demos else [],
        "binary": not task.graded,
        "rewards": [{"name": s.name, "label": s.key, "weight": s.weight, "params": dict(s.params)} for s in task.rewards],
        "correct": task.correct,
        "format": task.format,
        **(meta or {}),
    }


def _timing(stats: GenerationStats, n_items: int, score_seconds: float, wall_seconds: float) -> dict[str, Any]:
    return {
        "generation_seconds": stats.seconds,
        "scoring_seconds": score_seconds,
        "wall_seconds": wall_seconds,
        "generated_tokens": stats.tokens,
        "prompt_tokens": stats.prompt_tokens,
        "items_per_s": n_items / stats.seconds if stats.seconds > 0 else None,
        "tokens_per_s": stats.tokens / stats.seconds if stats.seconds > 0 else None,
    }


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
