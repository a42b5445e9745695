"""Checking the arithmetic of a worked solution: :func:`check_steps` finds every claim such as
``120 / 40 = 3`` (:mod:`rewards.steps_parse`) and verifies it exactly; the ``step_check`` reward scores it.

>>> r = check_steps("Time = 120 / 40 = 3 hours.\\nCost = 3 × $4 = $13\\n#### 13")
>>> r.n, r.n_valid, r.first_error.reason
(2, 1, '3 * 4 is 12, not 13')
>>> get_reward("step_check")(["48/2 = <<48/2=24>>24 clips", "10/3 = 3.4", "no arithmetic"])
[1.0, 0.0, 0.0]
"""

from __future__ import annotations

import functools
import gc
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import sympy

from rewards.core import REWARDS, BuiltinReward, completion_text, get_reward, report_detail  # noqa: F401 (doctest)
from rewards.math.parse import Unparseable, parse_plain
from rewards.math.reward import MathAnswer
from rewards.steps_parse import CURRENCY, Claim, Token, find_claims, is_bare, operands, side_text

MAX_TEXT_CHARS = 20_000  # only the start of a longer completion is checked
MAX_NUMBER_DIGITS = 100  # a longer written number is not read
MAX_WRONG_SHOWN = 5


@dataclass(frozen=True)
class Step:
    text: str  # the claim as written, e.g. "120 / 40 = 3"
    start: int  # char span in the completion
    end: int
    expected: str  # what the left side evaluates to, as text ("3", "7/2")
    claimed: str  # the value the text claims
    ok: bool
    reason: str  # "" when ok, else one line: "120 / 40 is 3, not 4"
    annotated: bool = False  # found in a calculator note <<...>>


@dataclass(frozen=True)
class StepReport:
    """The steps of one text, in order; ``unparsed``: claims whose sides could not be read (not
    steps); ``stopped``: why checking ended early ("" when the whole text was checked)."""

    steps: tuple[Step, ...]
    unparsed: int = 0
    stopped: str = ""

    @property
    def n(self) -> int:
        return len(self.steps)

    @property
    def n_valid(self) -> int:
        return sum(s.ok for s in self.steps)

    @property
    def all_valid(self) -> bool:
        return self.n > 0 and self.n_valid == self.n

    @property
    def first_error(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)

    def detail(self) -> dict[str, Any]:
        """JSON-able summary: counts and the first few wrong steps (1-based ``n``, char span ``at``)."""
        wrong = [{"n": k + 1, "at": [s.start, s.end], "step": s.text, "reason": s.reason}
                 for k, s in enumerate(self.steps) if not s.ok][:MAX_WRONG_SHOWN]
        out: dict[str, Any] = {"steps": self.n, "valid": self.n_valid, "wrong": wrong}
        if self.unparsed:
            out["unparsed"] = self.unparsed
        if self.stopped:
            out["stopped"] = self.stopped
        return out


def describe(detail: dict[str, Any]) -> str:
    """One line for a table: ``step 2 wrong: 120 / 40 is 3, not 4``.

    >>> describe(check_steps("1 + 1 = 2, 2 * 3 = 5").detail())
    'step 2 wrong: 2 * 3 is 6, not 5'
    """
    wrong = detail.get("wrong") or []
    if wrong:
        more = detail["steps"] - detail["valid"] - 1
        return f"step {wrong[0]['n']} wrong: {wrong[0]['reason']}" + (f" (+{more} more)" if more else "")
    if not detail.get("steps"):
        return "no arithmetic steps"
    return f"{detail['valid']}/{detail['steps']} steps valid"


# --- values ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _evaluate(expr: str) -> Fraction | None:
    """The exact value of an arithmetic expression, by the project's restricted parser (None if it
    cannot be read, is too large, or is not a rational number)."""
    try:
        v = parse_plain(expr)
    except (Unparseable, RecursionError, OverflowError, ValueError, TypeError, MemoryError, ZeroDivisionError):
        return None
    if isinstance(v, sympy.Rational):
        return Fraction(int(v.p), int(v.q))
    return None


def _number(tok: Token) -> Fraction | None:
    if len(tok.text) > MAX_NUMBER_DIGITS:
        return None
    v = Fraction(tok.text.strip("()"))  # "(3/2)": a fraction written as one number
    return v / 100 if tok.pct else v


def _value(side: tuple[Token, ...]) -> tuple[Fraction | None, Fraction]:
    """``(value, tolerance)``: a bare number with ``d`` decimals may be the rounding of the exact
    value (within half a unit of its last digit); integers and expressions must be exact."""
    core = operands(side)
    if not is_bare(side):
        return _evaluate(side_text(side)), Fraction(0)
    num = core[-1]
    v = _number(num)
    if v is None:
        return None, Fraction(0)
    decimals = len(num.text.partition(".")[2])
    unit = Fraction(1, 10**decimals) / (100 if num.pct else 1)
    tol = (unit if num.approx else unit / 2) if decimals else Fraction(0)  # "3.33" rounded, "3.333..." cut
    return (-v if core[0].text == "-" else v), tol


def show(v: Fraction) -> str:
    """``3``, ``7/2``, ``-1/3``."""
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def _claimed_text(side: tuple[Token, ...], value: Fraction) -> str:
    if is_bare(side):
        return side_text(side).replace(" ", "")
    return show(value)


def _as_percent(left: tuple[Token, ...], right: tuple[Token, ...], expected: Fraction, claimed: Fraction,
                tol: Fraction) -> bool:
    """The percent conventions: ``3/4 * 100 = 75%`` and ``9/21 * 100% = 42.86`` (the sign dropped)."""
    core, bare = operands(left), is_bare(right)
    shown = operands(right)[-1]
    if bare and shown.pct and any(t.text == "100" and not t.pct for t in core):
        return abs(expected - claimed * 100) <= tol * 100
    if bare and not shown.pct and any(t.text == "100" and t.pct for t in core):
        return abs(expected * 100 - claimed) <= tol
    return False


# --- checking ----------------------------------------------------------------------------------

@dataclass
class _Checker:
    text: str
    steps: list[Step] = field(default_factory=list)
    unparsed: int = 0
    notes: dict[int, tuple[Fraction, bool]] = field(default_factory=dict)  # note -> its last (expected, ok)

    def add(self, c: Claim) -> None:
        left, right = c.left, c.right
        if left is None or right is None:
            self.unparsed += c.twin < 0
            return
        if is_bare(left) and not is_bare(right):
            left, right = right, left  # "... = 7 = 14/2": 14/2 is claimed to be 7
        expected, _ = _value(left)
        claimed, tol = _value(right)
        if expected is None or claimed is None:
            self.unparsed += c.twin < 0
            return
        ok = abs(expected - claimed) <= tol or _as_percent(left, right, expected, claimed, tol)
        if c.twin >= 0 and self.notes.get(c.twin) == (expected, ok):
            return  # the visible twin of a calculator note (48/2 = <<48/2=24>>24): counted once
        if c.note >= 0:
            self.notes[c.note] = (expected, ok)
        shown = show(expected)
        approx = "" if ok or expected.denominator == 1 else f" (≈ {float(expected):.6g})"
        reason = "" if ok else f"{side_text(left)} is {shown}{approx}, not {_claimed_text(right, claimed)}"
        start = c.start - (c.start > 0 and self.text[c.start - 1] in CURRENCY)  # "$12 * 2 = $24"
        self.steps.append(Step(self.text[start:c.end], start, c.end, shown, _claimed_text(right, claimed), ok,
                               reason, c.note >= 0))


_gc = threading.local()  # per thread: seconds its cyclic-GC passes took (.total) and when the running one began (.t0)


def _gc_clock(phase: str, info: dict[str, Any]) -> None:
    """``gc.callbacks`` hook: the thread CPU time each collection takes, on the thread that ran it."""
    if phase == "start":
        _gc.t0 = time.thread_time()
    elif getattr(_gc, "t0", None) is not None:
        _gc.total = getattr(_gc, "total", 0.0) + time.thread_time() - _gc.t0
        _gc.t0 = None


gc.callbacks.append(_gc_clock)


def _own_cpu_time() -> float:
    """This thread's CPU time without its garbage-collector passes: a full collection of a large process can take
    longer than a whole check, and lands on whichever allocation triggers it."""
    return time.thread_time() - getattr(_gc, "total", 0.0)


def check_steps(text: str, time_limit_s: float = 0.5) -> StepReport:
    """Every arithmetic claim of ``text`` (its first ``MAX_TEXT_CHARS`` characters), verified exactly;
    stops after ``time_limit_s`` of this thread's own CPU time with the claims checked so far (``stopped``
    says so). Own CPU time: neither a loaded or descheduled machine nor a garbage-collector pass changes the verdict.

    >>> [(s.text, s.ok) for s in check_steps("20% of 50 = 10, 10/3 = 3.33 and 10/3 = 3").steps]
    [('20% of 50 = 10', True), ('10/3 = 3.33', True), ('10/3 = 3', False)]
    """
    deadline = _own_cpu_time() + time_limit_s
    stopped = f"text cut at {MAX_TEXT_CHARS} characters" if len(text) > MAX_TEXT_CHARS else ""
    cut = len(text)
    if stopped:  # at a line or word end, so the last claim read is not cut mid-number
        cut = max(text.rfind("\n", 0, MAX_TEXT_CHARS), text.rfind(" ", 0, MAX_TEXT_CHARS), 0) or MAX_TEXT_CHARS
    checker = _Checker(text[:cut])
    for claim in find_claims(checker.text):
        if _own_cpu_time() > deadline:
            stopped = f"time limit {time_limit_s:g} s"
            break
        checker.add(claim)
    steps = tuple(sorted(checker.steps, key=lambda s: (s.start, s.end)))
    return StepReport(steps, checker.unparsed, stopped)


# --- the reward ---------------------------------------------------------------------------------

@REWARDS.register("step_check")
@dataclass(frozen=True)
class StepCheck(BuiltinReward):
    """Arithmetic of the reasoning. ``mode``: ``fraction`` (valid steps / steps), ``all`` (1.0 iff
    every step holds), ``with_answer`` (1.0 iff every step holds and the final answer is right per
    ``math_answer`` against ``gold_column``; ``lucky`` when the answer is right but a step is false).
    ``no_steps``: the score of a completion without any arithmetic claim. Each sample's
    :meth:`StepReport.detail` is reported (:func:`rewards.core.report_detail`)."""

    mode: Literal["fraction", "all", "with_answer"] = "fraction"
    no_steps: float = 0.0
    lucky: float = 0.0
    gold_column: str = "answer"
    time_limit_s: float = 0.5
    timeout_s: float = 5.0  # math_answer's own check (with_answer)

    def __post_init__(self) -> None:
        if self.time_limit_s <= 0 or self.timeout_s <= 0:
            raise ValueError("step_check needs time_limit_s > 0 and timeout_s > 0")

    def required_columns(self) -> set[str]:
        return {self.gold_column} if self.mode == "with_answer" else set()

    def __call__(self, completions: list, **columns: Any) -> list[float | None]:
        answers: list[float | None] = [None] * len(completions)
        if self.mode == "with_answer":
            answers = MathAnswer(gold_column=self.gold_column, timeout_s=self.timeout_s)(completions, **columns)
        scores: list[float | None] = []
        for i, c in enumerate(completions):
            report = check_steps(completion_text(c), self.time_limit_s)
            detail = report.detail()
            if self.mode == "with_answer":
                detail["answer_ok"] = None if answers[i] is None else answers[i] == 1.0
            report_detail(i, detail)
            scores.append(self._score(report, answers[i]))
        return scores

    def _score(self, report: StepReport, answer: float | None) -> float | None:
        if report.n == 0:
            return self.no_steps
        if self.mode == "fraction":
            return report.n_valid / report.n
        if self.mode == "all":
            return 1.0 if report.all_valid else 0.0
        if answer is None:
            return None  # no gold, or math_answer's check failed (reported by it)
        if answer != 1.0:
            return 0.0
        return 1.0 if report.all_valid else self.lucky

