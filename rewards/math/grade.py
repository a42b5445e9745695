"""Is a predicted answer the gold one? Tier 1 in-process (text, plain numbers), tier 2 symbolic
(:func:`check_symbolic`, parsed sympy objects compared) in a sandbox worker under a hard time limit.

>>> equivalent(parse_answer("\\\\frac{1}{2}"), parse_answer("0.5"))
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import sympy

from rewards.math.normalization import (
    compact, decimals_shown, normalize, plain_number, rounding_tolerance, shown_decimal, terminating,
)
from rewards.math.parse import MAX_PARSE_CHARS, Unparseable, parse_answer
from rewards.math.tree import digits_bound, with_imaginary_unit
from rewards.sandbox import get_pool, in_worker


@dataclass(frozen=True)
class VerifyOptions:
    timeout_s: float = 5.0  # hard limit per symbolic check (worker process killed past it)
    rounding: bool = True  # "0.33", "0.3" count for 1/3 (a decimal rounding a non-terminating gold)
    symbolic: bool = True  # allow the sympy tier (off: text and plain numbers only)
    processes: int = 1  # verification worker processes
    # a plain-number gold is not matched by bare arithmetic on numbers ("84 - 32", "16 \\times 54"): that is the
    # question, not its result (GRPO found this: it learned to copy the question after '####' and score 100%)
    number_needs_number: bool = True


class VerificationTimeout(TimeoutError):
    pass


# what sandbox workers run for tier 2; workers resolve it by name, through the package's re-export
SYMBOLIC_CHECK = "rewards.math:check_symbolic"


# --- tier 1: text and plain numbers (bounded, in-process) ------------------------------------------

def numbers_equal(gold: tuple[Fraction, bool], pred: tuple[Fraction, bool], pred_text: str, rounding: bool = True) -> bool:
    """Exact equality of two plain numbers, allowing a percent sign on either side
    (``50%`` = ``50`` = ``0.5``) and, when ``rounding``, a decimal (1+ digits after the point; of a
    percent, 2 more) that rounds a non-terminating gold: ``0.33``, ``0.3``, ``33%`` for ``1/3``,
    not ``0.34`` (:func:`rounding_tolerance`)."""
    g, gp = gold
    p, pp = pred
    candidates = {p} | ({p / 100} if pp else set())
    golds = {g} | ({g / 100} if gp else set()) | ({g * 100} if pp and not gp else set())
    if candidates & golds:
        return True
    d = decimals_shown(pred_text)
    if not rounding or terminating(g):
        return False
    shown = ([(p, d)] if d >= 1 else []) + ([(p / 100, d + 2)] if pp and not gp else [])
    return any(abs(g - v) <= rounding_tolerance(g, places) for v, places in shown)


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


# --- tier 2: symbolic (in a sandbox worker) -------------------------------------------------------

_CHOICE = re.compile(r"\(\s*[A-Za-z]\s*\)")


def check_symbolic(gold: str, pred: str, rounding: bool = True) -> bool:
    """Tier 2 (runs in a sandbox worker): parse both sides with the restricted parsers, compare.
    An unreadable prediction is simply not equal; an unreadable gold cannot be matched."""
    g_text, p_text = normalize(gold), normalize(pred)
    if _CHOICE.fullmatch(g_text):  # a choice label "(E)" is matched as text, never as the number e
        return compact(g_text) == compact(p_text)
    try:
        g, p = with_imaginary_unit(parse_answer(g_text), parse_answer(p_text))
    except (Unparseable, RecursionError, MemoryError, OverflowError):
        return False
    try:
        if equivalent(g, p):
            return True
    except (RecursionError, MemoryError, OverflowError, TypeError, ValueError, AttributeError):
        return False
    shown = shown_decimal(p_text) if rounding else None
    if shown is not None and getattr(g, "is_number", False):
        return _rounds_to(g, *shown)
    return False


def _rounds_to(gold: Any, shown: Fraction, places: int) -> bool:
    """Is ``shown`` the real number ``gold`` rounded to ``places`` decimals (within
    :func:`rounding_tolerance`)? Never for a terminating decimal gold: that must be matched exactly."""
    if isinstance(gold, sympy.Rational) and terminating(Fraction(gold.p, gold.q)):
        return False
    try:
        prec = max(30, places + 20)
        _, im_part = gold.evalf(prec).as_real_imag()
        err = abs((gold - sympy.Rational(shown.numerator, shown.denominator)).evalf(prec))
        tol = rounding_tolerance(shown, places)
        return bool(_negligible(im_part) and err <= sympy.Rational(tol.numerator, tol.denominator))
    except (TypeError, ValueError, OverflowError, AttributeError):
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


# --- equivalence of parsed answers -----------------------------------------------------------------

def equivalent(gold: Any, pred: Any) -> bool:
    """True only when ``pred`` is shown equal to ``gold``: structurally, numerically (exact
    numbers exactly; see :func:`expr_equal`), or by ``simplify(gold - pred) == 0``; tuples in
    order, sets in any order, intervals by endpoints and openness, matrices elementwise."""
    try:
        if gold == pred:
            return True
    except Exception:  # noqa: BLE001 - some sympy types refuse ==; go on to the structural checks
        pass
    if isinstance(gold, (sympy.Tuple, tuple)) or isinstance(pred, (sympy.Tuple, tuple)):
        return _seq_equal(gold, pred)
    if isinstance(gold, sympy.FiniteSet) or isinstance(pred, sympy.FiniteSet):
        return _set_equal(gold, pred)
    if isinstance(gold, sympy.Interval) and isinstance(pred, sympy.Interval):
        return (gold.left_open == pred.left_open and gold.right_open == pred.right_open
                and expr_equal(gold.start, pred.start) and expr_equal(gold.end, pred.end))
    if isinstance(gold, sympy.Union) and isinstance(pred, sympy.Union):
        return _set_equal(sympy.FiniteSet(*gold.args), sympy.FiniteSet(*pred.args))
    if isinstance(gold, sympy.MatrixBase) or isinstance(pred, sympy.MatrixBase):
        return (isinstance(gold, sympy.MatrixBase) and isinstance(pred, sympy.MatrixBase) and gold.shape == pred.shape
                and all(expr_equal(a, b) for a, b in zip(gold, pred)))
    if isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr):
        return expr_equal(gold, pred)
    if isinstance(gold, sympy.Rel) and isinstance(pred, sympy.Rel):
        return _rel_equal(gold, pred)
    return False


def _items(x: Any) -> list | None:
    if isinstance(x, (sympy.Tuple, tuple)):
        return list(x)
    if isinstance(x, sympy.FiniteSet):
        return list(x.args)
    if isinstance(x, sympy.Interval) and x.left_open and x.right_open:  # "(1, 2)": a point, too
        return [x.start, x.end]
    return None


def _seq_equal(gold: Any, pred: Any) -> bool:
    g, p = _items(gold), _items(pred)
    if g is None or p is None or len(g) != len(p):
        return False
    if isinstance(gold, sympy.FiniteSet) or isinstance(pred, sympy.FiniteSet):
        return _set_equal(sympy.FiniteSet(*g), sympy.FiniteSet(*p))
    return all(equivalent(a, b) for a, b in zip(g, p))


def _set_equal(gold: Any, pred: Any) -> bool:
    g, p = _items(gold), _items(pred)
    if g is None or p is None or len(g) != len(p):
        return False
    unmatched = list(p)
    for a in g:
        for j, b in enumerate(unmatched):
            if equivalent(a, b):
                del unmatched[j]
                break
        else:
            return False
    return True


def _rel_equal(a: Any, b: Any) -> bool:
    if type(a) is type(b):
        return expr_equal(a.lhs - a.rhs, b.lhs - b.rhs)
    if a.reversed.func is b.func:
        return expr_equal(a.lhs - a.rhs, b.rhs - b.lhs)
    return False


def expr_equal(a: Any, b: Any) -> bool:
    """Two expressions equal? Rationals exactly, infinities only structurally, other numbers by
    :func:`_same_value`; expressions in the same symbols at three points, then ``simplify``."""
    if a == b:
        return True
    if a.is_Symbol and b.is_Symbol:
        return str(a).lower() == str(b).lower()
    if a.is_number and b.is_number:
        if (a.is_Rational and b.is_Rational) or a.is_infinite or b.is_infinite:
            return False  # exact numbers compare exactly, however small or large; oo only equals oo
        verdict = _same_value(a, b)
        if verdict is not None:
            return verdict
    if a.free_symbols != b.free_symbols:
        return False  # "x + 1" is not the answer "3", whatever x is
    verdict = _equal_at_points(a, b)
    if verdict is not None:
        return verdict
    try:
        return sympy.simplify(a - b) == 0
    except Exception:  # noqa: BLE001 - sympy could not decide: not shown equal
        return False


FLOAT_RTOL = 1e-12  # where a sympy Float (an inexact number) takes part
MAX_DIGITS = 40_000  # working precision cap of a numeric comparison (numbers are capped at 10^±10000)


def _precision(a: Any, b: Any) -> int:
    """Working digits that tell ``a`` from ``b`` if they differ: twice the orders of magnitude their
    numbers span (:func:`~rewards.math.tree.digits_bound`), plus 100. Only spent on cancellation."""
    return int(min(MAX_DIGITS, 100 + 2 * (digits_bound(a) + digits_bound(b))))


def _negligible(x: Any) -> bool:
    """Zero, or a Float in which evalf could resolve no digit (cancellation: ``0.e-165``)."""
    return x == 0 or (isinstance(x, sympy.Float) and x._prec < 10)


def _same_value(a: Any, b: Any, subs: dict | None = None, dps: int | None = None) -> bool | None:
    """Do ``a`` and ``b`` (numbers, or expressions at the point ``subs``) have the same value?
    Exact ones: only when evalf, carrying up to ``dps`` (:func:`_precision`) digits on cancellation,
    resolves no digit of ``a - b`` — relative to the numbers written, never an absolute tolerance
    (``\\sqrt{2+10^{-200}}`` is not ``\\sqrt{2}``); where a Float takes part, within ``FLOAT_RTOL``
    relative. None: not finite, or not evaluable to numbers."""
    dps = dps or _precision(a, b)
    try:
        va, vb = (x.evalf(30, subs=subs) for x in (a, b))
        if not (va.is_finite and vb.is_finite):
            return None
        d = (a - b).evalf(30, subs=subs, maxn=dps)
        parts = d.as_real_imag()
        if all(_negligible(x) for x in parts):
            return True
        if not all(x == 0 or isinstance(x, sympy.Float) for x in parts):
            return None
        if a.has(sympy.Float) or b.has(sympy.Float):
            return bool(abs(d) <= FLOAT_RTOL * max(abs(va), abs(vb)))
        return False
    except (TypeError, ValueError, OverflowError, ZeroDivisionError, AttributeError):
        return None


_POINTS = [(0.4142135623, 0.7320508075, 0.2360679774), (0.6180339887, 0.3166247903, 0.5857864376),
           (0.8284271247, 0.1547005383, 0.4494897427)]


def _equal_at_points(a: Any, b: Any) -> bool | None:
    """Identity test of two expressions in the same symbols at three fixed irrational-looking
    points in (0, 1) (Schwartz-Zippel style; cheap where ``simplify`` can take minutes, e.g.
    ``(x+y+z)^500``), each compared by :func:`_same_value` with the points carried to its working
    precision. None when they cannot be evaluated there (then ``simplify`` decides)."""
    syms = sorted(a.free_symbols, key=str)
    dps = _precision(a, b)
    for point in _POINTS:
        subs = {s: sympy.Float(point[i % 3] + 0.01 * (i // 3), dps) for i, s in enumerate(syms)}
        verdict = _same_value(a, b, subs, dps)
        if verdict is not True:
            return verdict
    return True
