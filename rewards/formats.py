"""Format rewards: answer format, think/answer tags, a user regex, overlong shaping, repetition.

All are pure text checks with linear-time scans (no backtracking regexes on model output),
except ``regex``, whose pattern comes from the user and so runs in the sandbox.

>>> get_reward("think_format")(["<think>2+2</think> <answer>4</answer>", "<answer>4</answer><think>x</think>"])
[1.0, 0.0]
>>> get_reward("format_answer", style="boxed")(["so \\\\boxed{4}", "so \\\\boxed{4} or \\\\boxed{5}", "4"])
[1.0, 0.0, 0.0]
>>> get_reward("overlong", max_length=100, buffer=20)(["x" * 80, "x" * 90, "x" * 120])
[0.0, -0.5, -1.0]
>>> get_reward("repetition", ngram_size=2)(["a b a b a b", "the cat sat on the mat"])
[-0.6, 0.0]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from rewards.core import REWARDS, BuiltinReward, get_reward  # noqa: F401 (doctest)
from rewards.math.extract import last_boxed


@REWARDS.register("format_answer")
@dataclass(frozen=True)
class FormatAnswer(BuiltinReward):
    """1.0 when the completion states its final answer in ``style`` (``####``: the completion
    ends with ``#### <answer>`` on one line; ``boxed``: a non-empty ``\\boxed{}``), exactly once when ``single``."""

    style: Literal["####", "boxed"] = "####"
    single: bool = True  # several answers ("#### 3 ... #### 4") do not count

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        if self.style == "boxed":
            n = text.count("\\boxed") + text.count("\\fbox")
            ok = n >= 1 and bool((last_boxed(text) or "").strip())
        else:
            n = text.count("####")
            tail = text[text.rfind("####") + 4:].strip() if n else ""
            ok = bool(tail) and "\n" not in tail  # "#### <answer>" ends the completion
        return 1.0 if ok and (n == 1 or not self.single) else 0.0


@REWARDS.register("think_format")
@dataclass(frozen=True)
class ThinkFormat(BuiltinReward):
    """1.0 for ``<think>...</think>`` then ``<answer>...</answer>``, each tag exactly once and in
    order; with ``strict``, nothing but whitespace outside the two blocks."""

    think_tag: str = "think"
    answer_tag: str = "answer"
    strict: bool = True

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        tags = [f"<{self.think_tag}>", f"</{self.think_tag}>", f"<{self.answer_tag}>", f"</{self.answer_tag}>"]
        if any(text.count(t) != 1 for t in tags):
            return 0.0
        pos = [text.index(t) for t in tags]
        if pos != sorted(pos) or not text[pos[2] + len(tags[2]):pos[3]].strip():
            return 0.0
        if self.strict:
            outside = text[:pos[0]] + text[pos[1] + len(tags[1]):pos[2]] + text[pos[3] + len(tags[3]):]
            if outside.strip():
                return 0.0
        return 1.0


@REWARDS.register("regex")
@dataclass(frozen=True)
class RegexReward(BuiltinReward):
    """``match_score`` when the user's ``pattern`` matches (``search`` anywhere or ``fullmatch``),
    else ``miss_score``. The pattern is the user's, so it may backtrack: this reward runs in the
    sandbox with a time limit (``bounded = False``)."""

    pattern: str = ""
    mode: Literal["search", "fullmatch"] = "search"
    ignorecase: bool = False
    dotall: bool = True
    multiline: bool = False
    match_score: float = 1.0
    miss_score: float = 0.0

    bounded = False

    def __post_init__(self) -> None:
        if not self.pattern:
            raise ValueError("regex reward needs a 'pattern'")
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise ValueError(f"pattern {self.pattern!r} is not a valid regex: {e}") from None

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        flags = (re.I if self.ignorecase else 0) | (re.S if self.dotall else 0) | (re.M if self.multiline else 0)
        rx = re.compile(self.pattern, flags)
        hit = rx.search(text) if self.mode == "search" else rx.fullmatch(text)
        return self.match_score if hit else self.miss_score


@REWARDS.register("overlong")
@dataclass(frozen=True)
class Overlong(BuiltinReward):
    """DAPO's soft overlong punishment (Yu et al. 2025, arXiv:2503.14476, eq. 13): 0 up to
    ``max_length - buffer``, then falling linearly to -1 at ``max_length``, -1 beyond.
    Length in ``unit``: tokens (the ``completion_ids`` column TRL passes), chars or words;
    ``auto`` = tokens when ``completion_ids`` is given, else chars."""

    max_length: int = 0
    buffer: int = 0
    unit: Literal["auto", "tokens", "chars", "words"] = "auto"

    def __post_init__(self) -> None:
        if self.max_length <= 0 or not 0 <= self.buffer <= self.max_length:
            raise ValueError("overlong needs max_length > 0 and 0 <= buffer <= max_length")

    def required_columns(self) -> set[str]:
        return {"completion_ids"} if self.unit == "tokens" else set()

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        ids = row.get("completion_ids")
        if self.unit == "tokens" or (self.unit == "auto" and ids is not None):
            n = len(ids)
        elif self.unit == "words":
            n = len(text.split())
        else:
            n = len(text)
        soft = self.max_length - self.buffer
        if n <= soft:
            return 0.0
        if n > self.max_length:
            return -1.0
        return (soft - n) / self.buffer


@REWARDS.register("repetition")
@dataclass(frozen=True)
class Repetition(BuiltinReward):
    """N-gram repetition penalty: ``max_penalty * (1 - distinct n-grams / n-grams)`` over words,
    in ``[max_penalty, 0]``; 0 for texts shorter than one n-gram (as in open-r1's version of
    Yeo et al. 2025, arXiv:2502.03373)."""

    ngram_size: int = 3
    max_penalty: float = -1.0

    def __post_init__(self) -> None:
        if self.ngram_size < 1 or self.max_penalty > 0:
            raise ValueError("repetition needs ngram_size >= 1 and max_penalty <= 0")

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        words = text.lower().split()
        grams = [tuple(words[i:i + self.ngram_size]) for i in range(len(words) - self.ngram_size + 1)]
        if not grams:
            return 0.0
        return round(self.max_penalty * (1 - len(set(grams)) / len(grams)), 12) + 0.0
