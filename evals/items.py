"""Which items an eval runs on: the task's rows (or the caller's), their ids, the ``--shuffle`` /
``--limit`` subset, and the few-shot demos (never one of the evaluated items)."""

from __future__ import annotations

import random
from typing import Any, Sequence

from evals.tasks import Task, item_hash
from rltk.core.errors import UserError
from rltk.core.rows import Rows, read_rows


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")


def source_rows(task: Task, rows: Sequence[dict[str, Any]] | Rows | None, data: str | None) -> Rows:
    """``rows`` (a :class:`Rows`, or plain dicts: "in-memory rows"), else ``data``, else the task's
    own source; checked to be non-empty and to have every field the task needs."""
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
    return source


def item_ids(task: Task, source: Rows) -> list[str]:
    """The task's id of each source row; positions instead when those do not identify the rows
    (comparisons pair items on their ids)."""
    ids = [task.item_id(r, i) for i, r in enumerate(source.rows)]
    if len(set(ids)) != len(ids):
        ids = [f"{task.name}-{i:05d}" for i in range(len(source.rows))]
    return ids


def chosen_positions(n: int, limit: int | None, shuffle: bool, seed: int) -> list[int]:
    """The first ``limit`` of the ``n`` source positions, after a seeded shuffle when ``shuffle``
    (same seed, same subset)."""
    positions = list(range(n))
    if shuffle:
        random.Random(f"rows-{seed}").shuffle(positions)
    check_limit(limit)
    if limit is not None:
        positions = positions[:limit]
    return positions


def pick_demos(task: Task, k: int, rows: Rows, eval_rows: Rows, data: str | None, few_shot_data: str | None,
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
