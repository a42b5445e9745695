"""``math_answer``: parse the final answer out of a completion, then verify it against the gold.

Two verbs, as in Math-Verify: :func:`extract_answer` (completion -> answer text; ``\\boxed{}``
with nested braces, ``#### x``, "the answer is x", last number, each switchable) and
:func:`verify` (gold, answer -> equal?). Gold and prediction are not symmetric: the gold may be
a GSM8K solution (``... #### 72``) or a MATH LaTeX answer (:func:`gold_answer`).

Verification is tiered so the common case is fast and nothing can hang:

1. normalised text equal, or both plain numbers (``1,234``, ``0.5``, ``1/2``, ``\\frac{1}{2}``,
   ``50%``) compared exactly with Fractions — in-process, length-capped, microseconds;
2. otherwise both sides are parsed to sympy by restricted parsers (:mod:`rewards.mathparse`) and
   compared (structure, numeric value, ``simplify(a - b) == 0``) in a sandbox worker process
   under a hard time limit (:mod:`rewards.sandbox`). A check that times out gives ``None`` and is
   reported as a failure of the reward, never a silent 0.

>>> extract_answer("so the total is \\\\boxed{\\\\frac{1}{2}}.")
'\\\\frac{1}{2}'
>>> extract_answer("Natalia sold 48 + 24 = 72 clips.\\n#### 72")
'72'
>>> verify("0.5", "\\\\frac{1}{2}"), verify("1,000", "1000"), verify("72", "73")
(True, True, False)
>>> get_reward("math_answer")(["... so the answer is $\\\\frac{3}{4}$."], answer=["0.75"])
[1.0]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from rewards.core import REWARDS, BuiltinReward, completion_text, get_reward, report_failure  # noqa: F401 (doctest)
from rewards.mathparse import (
    MAX_PARSE_CHARS,
    Unparseable,
    compact,
    decimals_shown,
    equivalent,
    normalize,
    numbers_equal,
    parse_answer,
    plain_number,
)
from rewards.sandbox import get_pool, in_worker
from rltk.core.errors import UserError


@dataclass(frozen=True)
class ExtractOptions:
    """Which answer forms :func:`extract_answer` looks for, in this order of preference."""

    boxed: bool = True  # last \boxed{...} / \fbox{...}, nested braces allowed
    hashes: bool = True  # "#### 72" (GSM8K)
    answer_is: bool = True  # "the answer is 72", "Final answer: 72"
    last_number: bool = True  # fallback: the last number in the text


@dataclass(frozen=True)
class VerifyOptions:
    timeout_s: float = 5.0  # hard limit per symbolic check (worker process killed past it)
    rounding: bool = True  # "0.33" counts for 1/3 (>= 2 decimals shown, non-terminating gold)
    symbolic: bool = True  # allow the sympy tier (off: text and plain numbers only)
    processes: int = 1  # verification worker processes
    # a plain-number gold is not matched by bare arithmetic on numbers ("84 - 32", "16 \\times 54"): that is the
    # question, not its result (GRPO found this: it learned to copy the question after '####' and score 100%)
    number_needs_number: bool = True


class VerificationTimeout(TimeoutError):
    pass


SYMBOLIC_CHECK = "rewards.math:check_symbolic"  # what sandbox workers run for tier 2


# --- extraction ----------------------------------------------------------------------------------

MAX_BRACE_DEPTH = 200


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces), or ``\\boxed 5``."""
    i = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if i < 0:
        return None
    j = i + (6 if text.startswith("\\boxed", i) else 5)
    while j < len(text) and text[j] == " ":
        j += 1
    if j < len(text) and text[j] != "{":
        m = re.match(r"[^\s$]+", text[j:j + 200])
        return m.group(0) if m else None
    depth = 0
    for k in range(j, len(text)):
        c = text[k]
        if c == "{" and (k == 0 or text[k - 1] != "\\"):
            depth += 1
            if depth > MAX_BRACE_DEPTH:
                return None
        elif c == "}" and text[k - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[j + 1:k]
    return None


_ANSWER_IS = re.compile(r"(?i)\b(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*:?[ \t]*([^\n]{1,300})")
_MATH_SPAN = re.compile(r"\$\$?([^$]{1,300})\$\$?|\\\(([^\n]{1,300}?)\\\)")
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")


def _first_math(s: str) -> str:
    m = _MATH_SPAN.search(s)
    if m:
        return (m.group(1) or m.group(2) or "").strip()
    m = _SENTENCE_END.search(s)
    return (s[:m.start()] if m else s).strip()


def extract_answer(completion: Any, options: ExtractOptions = ExtractOptions()) -> str | None:
    """The final answer text of a completion (str or chat messages), or None if there is none."""
    text = completion_text(completion)
    if options.boxed:
        b = last_boxed(text)
        if b is not None and b.strip():
            return b.strip()
    if options.hashes:
        i = text.rfind("####")
        if i >= 0:
            line = text[i + 4:].strip().split("\n", 1)[0].strip()
            if line:
                return _first_math(line) if "$" in line[1:] else line.rstrip(".").strip()
    if options.answer_is:
        last = None
        for last in _ANSWER_IS.finditer(text):
            pass
        if last is not None:
            ans = _first_math(last.group(1))
            if ans:
                return ans
    if options.last_number:
        num = None
        for num in _LAST_NUMBER.finditer(text):
            pass
        if num is not None:
            return num.group(0).rstrip(",")
    return None


def gold_answer(gold: Any) -> str | None:
    """The gold answer text from a GSM8K solution (``... #### 72``), a text with ``\\boxed{}``,
    or a bare (LaTeX) answer; None if blank."""
    if gold is None:
        return None
    s = str(gold).strip()
    if "####" in s:
        s = s[s.rfind("####") + 4:].strip()
    elif "\\boxed" in s or "\\fbox" in s:
        s = last_boxed(s) or s
    return s or None


# --- verification --------------------------------------------------------------------------------

_OPERATOR_WORDS = re.compile(r"\\(?:times|cdot|div)")
_OPERATORS = re.compile(r"[-+*/×÷·^]")
_NUMBER_CHARS = frozenset("0123456789.,() \t\n")


def bare_arithmetic(text: str) -> bool:
    """Only numbers joined by arithmetic operators (``84 - 32``, ``16 \\times 54``, ``(2+3)*4``)?

    >>> bare_arithmetic("84 - 32"), bare_arithmetic("16 \\\\times 54"), bare_arithmetic("-16"), bare_arithmetic("\\\\sqrt{4}")
    (True, True, False, False)
    """
    if len(text) > MAX_PARSE_CHARS:
        return False
    t = _OPERATOR_WORDS.sub("*", text).strip()
    parts = _OPERATORS.split(t)  # linear scan: no backtracking regex on model output
    if len(parts) < 2 or any(not _NUMBER_CHARS.issuperset(part) for part in parts):
        return False
    has_digit = [any(c.isdigit() for c in part) for part in parts if part.strip()]  # empty part: a unary sign
    binary = any(a and b for a, b in zip(has_digit, has_digit[1:]))  # an operator with a number on each side
    return binary and plain_number(t) is None


def _quick(gold: str, pred: str, options: VerifyOptions) -> bool | None:
    """Tier 1: decide from text and plain numbers, or None to go symbolic. Bounded work."""
    if len(pred) > MAX_PARSE_CHARS or len(gold) > MAX_PARSE_CHARS:
        return False  # a wall of text is not an answer (and is never parsed)
    g, p = normalize(gold), normalize(pred)
    if compact(g) == compact(p):
        return True
    gn, pn = plain_number(g), plain_number(p)
    if gn is not None and pn is not None:
        return numbers_equal(gn, pn, p, rounding=options.rounding)
    if gn is not None and options.number_needs_number and bare_arithmetic(p):
        return False
    if not options.symbolic:
        return False
    return None


def check_symbolic(gold: str, pred: str, rounding: bool = True) -> bool:
    """Tier 2 (runs in a sandbox worker): parse both sides with the restricted parsers, compare.
    An unreadable prediction is simply not equal; an unreadable gold cannot be matched."""
    g_text, p_text = normalize(gold), normalize(pred)
    try:
        g = parse_answer(g_text)
        p = parse_answer(p_text)
    except (Unparseable, RecursionError, MemoryError, OverflowError):
        return False
    try:
        if equivalent(g, p):
            return True
    except (RecursionError, MemoryError, OverflowError, TypeError, ValueError, AttributeError):
        return False
    pn = plain_number(p_text)
    if rounding and pn is not None and decimals_shown(p_text) >= 2 and getattr(g, "is_number", False):
        try:
            gv = complex(g.evalf(30))
        except (TypeError, ValueError, OverflowError):
            return False
        d = decimals_shown(p_text)
        return gv.imag == 0 and round(gv.real, d) == round(float(pn[0]), d)
    return False


def verify_many(pairs: Sequence[tuple[str, str]], options: VerifyOptions = VerifyOptions()) -> list[tuple[bool | None, str | None]]:
    """``(verdict, failure)`` per ``(gold, pred)``: verdict None with a reason when the check
    failed (timed out, worker crashed). Symbolic checks run in parallel in the sandbox pool."""
    out: list[tuple[bool | None, str | None]] = [(None, None)] * len(pairs)
    slow: list[int] = []
    for i, (g, p) in enumerate(pairs):
        q = _quick(g, p, options)
        if q is None:
            slow.append(i)
        else:
            out[i] = (q, None)
    if not slow:
        return out
    if in_worker():  # already inside a killable worker: the parent's deadline bounds us
        for i in slow:
            out[i] = (check_symbolic(pairs[i][0], pairs[i][1], options.rounding), None)
        return out
    pool = get_pool("verify", options.processes)
    items = [((pairs[i][0], pairs[i][1], options.rounding), {}) for i in slow]
    for i, o in zip(slow, pool.run(("func", SYMBOLIC_CHECK), items, options.timeout_s)):
        out[i] = (bool(o.value), None) if o.ok else (None, f"math check {o.error}")
    return out


def verify(gold: str, pred: str | None, options: VerifyOptions = VerifyOptions()) -> bool:
    """Is ``pred`` the same answer as ``gold`` (already extracted)? Raises VerificationTimeout
    when the symbolic check runs past ``options.timeout_s``."""
    if pred is None:
        return False
    verdict, failure = verify_many([(gold, pred)], options)[0]
    if verdict is None:
        raise VerificationTimeout(failure or "math check failed")
    return verdict


# --- the reward ----------------------------------------------------------------------------------

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
