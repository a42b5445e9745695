"""Training data: rows from a JSONL/JSON/CSV/TSV file, an HF dataset, or generated arithmetic,
turned into chat prompts (and, for SFT, target completions).

Every row keeps where it came from (``file:line``, ``hub-id[split][i]``, ``arithmetic[train][i]``),
so a row that lacks a field a template or a reward needs is named in the error, before any
training starts.

>>> ds = load_dataset(DataConfig(source="arithmetic", limit=3, system_prompt="Be brief."))
>>> ds.messages(0)[1]["content"] == ds.rows[0]["question"], ds.where[0]
(True, 'arithmetic[train][0]')
>>> ds.completion(0, "{solution}") == ds.rows[0]["solution"]
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from evals.arithmetic import make_problems, worked_solution
from rltk.core.errors import UserError
from rltk.core.registry import Registry
from rltk.core.rows import Rows, load_hub_rows, read_rows
from rltk.core.templates import fill, template_fields


@dataclass(frozen=True)
class DataConfig:
    """The ``data:`` section."""

    source: str = "arithmetic"  # a registered source (SOURCES: "arithmetic"), a .jsonl/.json/.csv/.tsv file, or "hf:ORG/NAME"
    split: str = "train"  # arithmetic and hub datasets: which split
    hf_config: str | None = None  # hub dataset configuration name
    limit: int | None = None  # use the first N rows (arithmetic: generate N problems; default 5000)
    system_prompt: str | None = None
    prompt: str = "{question}"  # user message: a template over row fields
    messages_column: str | None = None  # or: a column holding the chat messages themselves
    completion: str = "{solution}"  # SFT target: a template over row fields
    # generated arithmetic (evals.arithmetic): the train split never overlaps the held-out test split
    ops: str = "+-*"
    digits: int = 2
    mul_digits: int | None = None
    data_seed: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        for name in ("prompt", "completion"):
            template_fields(getattr(self, name), f"data.{name}")


@dataclass
class Dataset(Rows):
    """Training rows (``where`` per row: file:line, hub-id[split][i] or arithmetic[train][i]) and the
    ``data:`` section that turns them into chat prompts and SFT targets."""

    cfg: DataConfig = field(default_factory=DataConfig)

    def messages(self, i: int) -> list[dict[str, str]]:
        """The chat prompt of row ``i``: the system prompt (if any), then the user message."""
        row = self.rows[i]
        if self.cfg.messages_column is not None:
            msgs = row.get(self.cfg.messages_column)
            if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
                raise UserError(f"{self.where[i]}: column '{self.cfg.messages_column}' must be a list of "
                                "{role, content} messages")
            out = [dict(m) for m in msgs]
        else:
            out = [{"role": "user", "content": fill(self.cfg.prompt, row, self.where[i])}]
        if self.cfg.system_prompt and not (out and out[0]["role"] == "system"):
            out.insert(0, {"role": "system", "content": self.cfg.system_prompt})
        return out

    def completion(self, i: int, template: str | None = None) -> str:
        return fill(template if template is not None else self.cfg.completion, self.rows[i], self.where[i])

    def check_for_prompts(self) -> None:
        if self.cfg.messages_column is not None:
            self.require([self.cfg.messages_column], "data.messages_column")
        else:
            self.require(template_fields(self.cfg.prompt, "data.prompt"), f"the prompt template {self.cfg.prompt!r} uses it")

    def check_rewards(self, reward_set: Any) -> None:
        """Every row must have every column the rewards need (``RewardSet.check_columns``), named by row."""
        need = sorted(set(reward_set.required_columns()) - {"prompts", "prompt", "completion_ids"})
        for row, where in zip(self.rows, self.where):
            present = [k for k, v in row.items() if v is not None]
            if any(c not in present for c in need):
                reward_set.check_columns([*present, "prompts", "completion_ids"], where)


SOURCES: Registry = Registry("data source")  # generated rows: name -> fn(DataConfig) -> Rows


@SOURCES.register("arithmetic")
def arithmetic_rows(cfg: DataConfig) -> Rows:
    """Generated arithmetic (:mod:`evals.arithmetic`): the train split never overlaps the held-out test split."""
    try:
        rows = make_problems(cfg.split, cfg.limit or 5000, seed=cfg.data_seed, ops=cfg.ops, digits=cfg.digits,
                             mul_digits=cfg.mul_digits)
    except ValueError as e:
        raise UserError(f"data: arithmetic: {e}") from e
    for r in rows:
        r["solution"] = worked_solution(r)
    where = [f"arithmetic[{cfg.split}][{i}]" for i in range(len(rows))]
    return Rows(rows, where, f"arithmetic:{cfg.split}:seed={cfg.data_seed}")


def load_dataset(cfg: DataConfig) -> Dataset:
    """Rows for ``cfg`` (see :class:`DataConfig`): a registered source (:data:`SOURCES`), ``hf:ORG/NAME`` or a
    file; UserError naming the file, line or key on bad input."""
    if cfg.source in SOURCES:
        loaded = SOURCES.get(cfg.source)(cfg)
    elif cfg.source.startswith("hf:"):
        loaded = load_hub_rows(cfg.source[3:], cfg.split, cfg.hf_config)
    else:
        loaded = read_rows(cfg.source)
    rows, where = loaded.rows, loaded.where
    if cfg.limit is not None:
        rows, where = rows[:cfg.limit], where[:cfg.limit]
    if not rows:
        raise UserError(f"data: {cfg.source} has no rows")
    return Dataset(list(rows), list(where), loaded.source, cfg=cfg)


class PromptStream:
    """An endless, seeded, index-addressable order over ``n`` rows: epoch ``e`` is its own shuffle.

    The run's data cursor is one integer (prompts drawn so far), so a resumed run draws exactly the
    prompts an uninterrupted run would have drawn next.

    >>> s = PromptStream(3, seed=0)
    >>> first = s.draw(3)
    >>> [pos for pos, _ in first], sorted(row for _, row in first), s.cursor   # an epoch visits every row once
    ([0, 1, 2], [0, 1, 2], 3)
    >>> PromptStream(3, seed=0, cursor=3).draw(2) == s.draw(2)
    True
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, cursor: int = 0):
        if n < 1:
            raise ValueError("no rows to draw prompts from")
        self.n, self.seed, self.shuffle, self.cursor = n, seed, shuffle, cursor
        self._perms: dict[int, list[int]] = {}

    def row_at(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if not self.shuffle:
            return offset
        perm = self._perms.get(epoch)
        if perm is None:
            perm = list(range(self.n))
            random.Random(f"prompt-stream-{self.seed}-{epoch}").shuffle(perm)
            self._perms = {epoch: perm}  # one epoch cached at a time
        return perm[offset]

    def draw(self, k: int) -> list[tuple[int, int]]:
        """(stream position, row index) of the next ``k`` prompts; advances the cursor."""
        out = [(p, self.row_at(p)) for p in range(self.cursor, self.cursor + k)]
        self.cursor += k
        return out


__all__ = ["SOURCES", "DataConfig", "Dataset", "PromptStream", "load_dataset"]
