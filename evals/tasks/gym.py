"""The ``gym`` task: held-out rows of any reasoning-gym dataset (:mod:`evals.gym`), scored by the
dataset's own ``score_answer`` (the ``gym_score`` reward) and the ``format_answer`` reward.

``--task gym --task-arg dataset=chain_sum --task-arg min_terms=3`` (a key that is no task option is the
dataset's config), or ``--task-arg 'config={min_terms: 3}'``.
"""

from __future__ import annotations

from typing import Any

from evals.gym import check_dataset, gym_rows
from evals.tasks.base import TASKS, Task, rows_id
from evals.tasks.math import BOXED_SYSTEM, HASH_SYSTEM
from rewards import RewardSpec
from rewards.gym import extract_gym_answer
from rltk.core.errors import UserError
from rltk.core.rows import Rows, read_rows

STYLES = {"####": HASH_SYSTEM, "boxed": BOXED_SYSTEM}


def _config(dataset: str | None, config: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """The dataset config: ``config`` plus the task args that are no task option (checked when ``dataset`` is known)."""
    if config is not None and not isinstance(config, dict):
        raise UserError(f"eval task gym: config must be a mapping, e.g. config={{min_terms: 3}}; got {config!r}")
    both = sorted(set(config or {}) & set(extra))
    if both:
        raise UserError(f"eval task gym: {', '.join(both)} given both as a task arg and inside config")
    out = {**(config or {}), **extra}
    if dataset is not None:
        check_dataset(dataset, out)
    elif out:
        raise UserError(f"eval task gym: config {sorted(out)} given without --task-arg dataset=NAME")
    return out


@TASKS.register("gym")
def gym_task(dataset: str | None = None, n: int = 200, seed: int = 0, split: str = "test", style: str = "####",
             config: dict[str, Any] | None = None, max_new_tokens: int = 512, **extra: Any) -> Task:
    """``n`` held-out rows (``split``, default ``test``; never a question of the ``train`` split of the
    same ``n`` and ``seed``) of the reasoning-gym ``dataset`` (required to load; without it the task only
    describes itself, for ``rltk eval tasks``). ``style``: the answer form asked for (``####`` or ``boxed``);
    correctness reads either. ``--data FILE`` evaluates rows exported from :func:`evals.gym.gym_rows`."""
    if style not in STYLES:
        raise UserError(f"eval task gym: style must be one of {', '.join(STYLES)}, got {style!r}")
    if not isinstance(n, int) or n < 1:
        raise UserError(f"eval task gym: n must be a positive integer, got {n!r}")
    cfg = _config(dataset, config, extra)

    def load(data: str | None) -> Rows:
        if data is not None:
            return read_rows(data)
        if dataset is None:
            raise UserError("eval task gym needs a reasoning-gym dataset: --task-arg dataset=NAME (e.g. chain_sum)")
        return gym_rows(dataset, split, n, seed=seed, **cfg)

    def demos(data: str | None) -> Rows | None:
        return None if dataset is None else gym_rows(dataset, "train", 64, seed=seed, **cfg)

    label = f"gym:{dataset}" if dataset else "gym"
    return Task(
        name=label,
        description=f"reasoning-gym {dataset or 'DATASET (--task-arg dataset=NAME)'} (held-out), answer as '{style} ...'",
        load=load,
        fields=("question", "answer", "gym_dataset", "gym_entry"),
        system=STYLES[style],
        user=lambda r: str(r["question"]),
        rewards=(
            RewardSpec("gym_score", label="correct"),
            RewardSpec("format_answer", params={"style": style}, label="format"),
        ),
        correct="correct",
        format="format",
        extract=lambda text: extract_gym_answer(text, "auto"),
        gold=lambda r: str(r.get("answer", "")),
        item_id=rows_id("id", label),
        demo=lambda r: f"#### {r['answer']}" if style == "####" else f"\\boxed{{{r['answer']}}}",
        demo_source=demos,
        max_new_tokens=max_new_tokens,
        options={"dataset": dataset, "n": n, "seed": seed, "split": split, "style": style, "config": cfg},
    )
