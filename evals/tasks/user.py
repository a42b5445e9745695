"""User tasks: a YAML file (data path, prompt template, rewards) read into a :class:`Task`, no
Python needed — :class:`UserTaskConfig` and :func:`load_user_task`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from evals.scorers import parse_label
from evals.tasks.base import Task, rows_id
from evals.tasks.math import math_gold
from rewards import RewardSpec
from rewards.math import extract_answer
from rltk.core.config import load_config
from rltk.core.errors import UserError
from rltk.core.rows import Rows, read_rows
from rltk.core.templates import fill, template_fields


@dataclass(frozen=True)
class UserTaskConfig:
    """A task in YAML, no Python needed. ``{column}`` placeholders in the templates are filled from each row.

    Example (``my_task.yaml``)::

        name: my_arith
        data: rows.jsonl                   # relative to this file; --data overrides
        system: "Answer with '#### <n>'."
        prompt: "Compute {question}"
        rewards:
          - {name: math_answer, label: correct}
          - {name: format_answer, params: {style: "####"}, label: format}
        correct: correct                   # omit for a graded task (weighted mean of the components)
        format: format
    """

    name: str
    prompt: str
    rewards: list[RewardSpec]  # each entry: name, weight, params, gate, gate_threshold, label
    data: str | None = None
    system: str | None = None
    correct: str | None = None
    format: str | None = None
    gold: str | None = None  # template for the gold shown in records, e.g. "{answer}"
    demo: str | None = None  # template for few-shot assistant turns
    id_column: str | None = None
    labels: list[str] = field(default_factory=list)
    extract: str = "math"  # math | label | none: how the answer shown in records is read
    combine: str = "mean"  # graded tasks (no 'correct'): weighted mean or product of the components
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.extract not in ("math", "label", "none"):
            raise ValueError(f"extract must be math, label or none, got {self.extract!r}")
        if self.extract == "label" and not self.labels:
            raise ValueError("extract: label needs a 'labels' list")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.combine not in ("mean", "product"):
            raise ValueError(f"combine must be mean or product, got {self.combine!r}")


def _template_fields(cfg: UserTaskConfig, where: str) -> list[str]:
    """Row fields the prompt, gold and demo templates use; the system prompt may use none."""
    needed = template_fields(cfg.prompt, f"{where}: prompt")
    for key in ("system", "gold", "demo"):
        tpl = getattr(cfg, key)
        if tpl is not None:
            fields_ = template_fields(tpl, f"{where}: {key}")
            if key != "system":
                needed += fields_
            elif fields_:
                raise UserError(f"{where}: system prompt cannot use row fields ({', '.join(fields_)})")
    return needed


def _check_rewards(cfg: UserTaskConfig, where: str) -> None:
    """At least one reward, and 'correct' / 'format' name the label of one of them."""
    if not cfg.rewards:
        raise UserError(f"{where}: 'rewards' needs at least one reward")
    labels = [s.key for s in cfg.rewards]
    for key in ("correct", "format"):
        val = getattr(cfg, key)
        if val is not None and val not in labels:
            raise UserError(f"{where}: '{key}: {val}' is not the label of one of its rewards ({', '.join(labels)})")


def _loader(cfg: UserTaskConfig, path: str | Path) -> Callable[[str | None], Rows]:
    """Rows from ``--data``, else the file's ``data`` (relative to the YAML file)."""
    where = str(path)
    base = Path(path).expanduser().resolve().parent
    default_data = None if cfg.data is None else str((base / cfg.data) if not Path(cfg.data).expanduser().is_absolute() else Path(cfg.data).expanduser())

    def load(data: str | None) -> Rows:
        target = data if data is not None else default_data
        if target is None:
            raise UserError(f"{where}: no 'data' in the task file and no --data given")
        return read_rows(target)

    return load


def _extractor(cfg: UserTaskConfig) -> Callable[[str], str | None]:
    if cfg.extract == "math":
        return extract_answer
    if cfg.extract == "label":
        lab = tuple(cfg.labels)
        return lambda text: parse_label(text, lab)
    return lambda text: None


def load_user_task(path: str | Path) -> Task:
    """A :class:`Task` from a YAML file (see :class:`UserTaskConfig`); errors name the file and key."""
    cfg = load_config(UserTaskConfig, path)
    where = str(path)
    needed = _template_fields(cfg, where)
    _check_rewards(cfg, where)
    gold_tpl = cfg.gold
    return Task(
        name=cfg.name,
        description=f"user task from {Path(path).name}",
        load=_loader(cfg, path),
        fields=tuple(dict.fromkeys(needed)),
        system=cfg.system,
        user=lambda r: fill(cfg.prompt, r, none_as_empty=True),
        rewards=tuple(cfg.rewards),
        correct=cfg.correct,
        format=cfg.format,
        extract=_extractor(cfg),
        gold=(lambda r: fill(gold_tpl, r, none_as_empty=True)) if gold_tpl else (lambda r: math_gold(r) if "answer" in r else ""),
        item_id=rows_id(cfg.id_column, cfg.name),
        labels=tuple(cfg.labels),
        demo=(lambda r: fill(cfg.demo, r, none_as_empty=True)) if cfg.demo else None,
        demo_source=None,
        max_new_tokens=cfg.max_new_tokens,
        combine=cfg.combine,
        options={"file": str(path)},
    )
