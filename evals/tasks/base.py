"""What a task is: :class:`Task`, the ``TASKS`` registry, :func:`get_task`, and helpers the task
families share (item ids, row fingerprints)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rewards import RewardSet
from rltk.core.errors import UserError
from rltk.core.registry import Registry
from rltk.core.rows import Rows

@dataclass(frozen=True)
class Task:
    """Everything an eval needs to know about one task (frozen: build variants with ``dataclasses.replace``)."""

    name: str
    description: str
    load: Callable[[str | None], Rows]  # data path (None: the built-in source) -> rows
    fields: tuple[str, ...]  # columns every row must have
    user: Callable[[dict[str, Any]], str]  # row -> user message
    rewards: tuple[Any, ...]  # RewardSpec list: the scorer
    correct: str | None  # label of the 0/1 component that decides correctness; None: graded task (weighted mean of components)
    format: str | None  # label of the component (>= 1.0 means compliant) that decides format compliance
    extract: Callable[[str], str | None]  # completion -> the answer shown in records and voted on for maj@k
    gold: Callable[[dict[str, Any]], str]  # row -> the gold answer shown in records
    item_id: Callable[[dict[str, Any], int], str]  # (row, position in source) -> stable item id
    system: str | None = None
    labels: tuple[str, ...] = ()  # classification tasks: per-class accuracy and macro-F1 over these
    demo: Callable[[dict[str, Any]], str] | None = None  # row -> assistant turn of a few-shot demo
    demo_source: Callable[[str | None], Rows | None] | None = None  # where demos come from by default (None: the rows not evaluated)
    max_new_tokens: int = 256
    combine: str = "mean"  # graded tasks: item score = weighted "mean" or "product" of the components
    options: dict[str, Any] = field(default_factory=dict)  # the factory options that built it (recorded in results)
    # (completion text, row) -> the task's own metrics of a sample, name -> number or None (evals.task_metrics)
    sample_metrics: Callable[[str, dict[str, Any]], dict[str, float | None]] | None = None

    def __post_init__(self) -> None:
        if self.combine not in ("mean", "product"):
            raise ValueError(f"combine must be 'mean' or 'product', got {self.combine!r}")

    def graded_score(self, components: dict[str, float | None]) -> float:
        """A graded task's sample score from its component scores (None components skipped):
        the weighted mean, or the product (every component must be good: a summary needs the
        precise terms *and* a summary's shape)."""
        weights = {s.key: float(s.weight) for s in self.rewards}
        vals = [(weights.get(k, 1.0), v) for k, v in components.items() if v is not None]
        if not vals:
            return 0.0
        if self.combine == "product":
            out = 1.0
            for _, v in vals:
                out *= v
            return out
        den = sum(abs(w) for w, _ in vals)
        return sum(w * v for w, v in vals) / den if den else 0.0

    @property
    def graded(self) -> bool:
        """True when item scores are continuous (no single correct/incorrect component)."""
        return self.correct is None

    def messages(self, row: dict[str, Any], demos: Sequence[dict[str, Any]] = ()) -> list[dict[str, str]]:
        """The chat prompt: system (if any), few-shot demo turns, then the item."""
        msgs: list[dict[str, str]] = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        for d in demos:
            if self.demo is None:
                raise UserError(f"task {self.name} has no demo answers, so it cannot be run few-shot")
            msgs.append({"role": "user", "content": self.user(d)})
            msgs.append({"role": "assistant", "content": self.demo(d)})
        msgs.append({"role": "user", "content": self.user(row)})
        return msgs

    def reward_set(self, timeout_s: float = 5.0, processes: int = 0) -> RewardSet:
        return RewardSet(list(self.rewards), timeout_s=timeout_s, processes=processes)

    def check_rows(self, rows: Rows) -> None:
        """UserError naming file and line of the first row lacking a field the task or its rewards need."""
        need = list(dict.fromkeys([*self.fields, *sorted(self.reward_set().required_columns() - {"prompts", "prompt"})]))
        rows.require(need, f"task {self.name} needs {', '.join(need)}")


def item_hash(row: dict[str, Any]) -> str:
    """A fingerprint of the row's content: comparisons refuse runs whose items differ."""
    blob = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def rows_id(column: str | None, prefix: str) -> Callable[[dict[str, Any], int], str]:
    """An ``item_id``: the row's ``column`` when it has one, else ``prefix-NNNNN`` (its position)."""

    def item_id(row: dict[str, Any], i: int) -> str:
        if column and row.get(column) not in (None, ""):
            return str(row[column])
        return f"{prefix}-{i:05d}"

    return item_id


TASKS: Registry = Registry("eval task")
