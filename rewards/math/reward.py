"""The ``math_answer`` reward: extract each completion's final answer, verify it against the row's gold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rewards.core import REWARDS, BuiltinReward, report_failure
from rewards.math.extract import ExtractOptions, extract_answer, gold_answer
from rewards.math.grade import VerifyOptions, verify_many
from rltk.core.errors import UserError


@REWARDS.register("math_answer")
@dataclass(frozen=True)
class MathAnswer(BuiltinReward):
    """1.0 if the completion's final answer equals the row's gold answer, else 0.0; None where
    the row has no gold; None (and a reported failure) where the check timed out."""

    gold_column: str = "answer"
    boxed: bool = True
    hashes: bool = True
    answer_is: bool = True
    last_number: bool = True
    timeout_s: float = 5.0
    rounding: bool = True
    symbolic: bool = True
    processes: int = 1
    number_needs_number: bool = True  # see VerifyOptions
    extract: ExtractOptions = field(init=False, repr=False, compare=False, default=ExtractOptions())

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        object.__setattr__(self, "extract", ExtractOptions(self.boxed, self.hashes, self.answer_is, self.last_number))

    def required_columns(self) -> set[str]:
        return {self.gold_column}

    def __call__(self, completions: list, **columns: Any) -> list[float | None]:
        if self.gold_column not in columns:
            raise UserError(f"reward 'math_answer' needs column '{self.gold_column}' (has: {', '.join(sorted(columns)) or 'none'})")
        golds = columns[self.gold_column]
        options = VerifyOptions(self.timeout_s, self.rounding, self.symbolic, self.processes, self.number_needs_number)
        scores: list[float | None] = [None] * len(completions)
        todo, pairs = [], []
        for i, c in enumerate(completions):
            g = gold_answer(golds[i])
            if g is None:
                continue  # no gold: not applicable
            pred = extract_answer(c, self.extract)
            if pred is None:
                scores[i] = 0.0
                continue
            todo.append(i)
            pairs.append((g, pred))
        for i, (verdict, failure) in zip(todo, verify_many(pairs, options)):
            if verdict is None:
                report_failure(i, failure or "math check failed")
            else:
                scores[i] = 1.0 if verdict else 0.0
        return scores
