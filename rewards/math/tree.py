"""Work on parsed sympy trees: evaluating the parser's lazy arithmetic in one linear pass
(:func:`evaluated`), how deeply functions nest (:func:`function_depth`), how many digits its numbers
span (:func:`digits_bound`), and reading ``i`` as the imaginary unit where the gold is complex
(:func:`complex_gold`, :func:`with_imaginary_unit`).

>>> import sympy
>>> with sympy.evaluate(False):
...     lazy = sympy.Mul(1, sympy.Pow(sympy.Mul(1, sympy.Pow(2, -1)), -1))
>>> lazy, evaluated(lazy)
(1/(1/2), 2)
>>> g, p = with_imaginary_unit(sympy.Symbol("i") * 4 + 3, 3 + 4 * sympy.Symbol("i"))
>>> g, g == p
(3 + 4*I, True)
"""

from __future__ import annotations

from typing import Any

import sympy

# built unevaluated by latex2sympy on purpose (x = 5 must not become True/False): rebuilt unevaluated
_KEEP_UNEVALUATED = (sympy.Rel, sympy.Union, sympy.Intersection, sympy.Complement, sympy.Contains, sympy.Not)


def evaluated(e: Any) -> Any:
    """The tree rebuilt bottom-up, every node evaluated (relations and set operations excepted,
    which stay unevaluated): one pass, linear in the tree's size. latex2sympy builds every sum,
    product and power with ``evaluate=False``, and sympy's ``evalf`` evaluates each factor of an
    unevaluated product twice, so a numeric check of ``\\frac{1}{\\frac{1}{...}}`` (or the
    library's own evaluated build of an interval around it) took 2^depth steps: depth 19 ran past
    the 5 s limit. Call it after :func:`rewards.math.parse.check_size`: evaluation computes."""
    with sympy.evaluate(True):  # also inside the parser's lazy pass
        return _rebuild(e)


def _rebuild(e: Any) -> Any:
    if isinstance(e, sympy.MatrixBase):
        return e.applyfunc(_rebuild)
    if not isinstance(e, sympy.Basic) or not e.args:
        return e
    args = [_rebuild(a) for a in e.args]
    try:
        if isinstance(e, _KEEP_UNEVALUATED):
            return e.func(*args, evaluate=False)
        return e.func(*args)
    except (TypeError, ValueError, AttributeError, NotImplementedError):  # a node that cannot be rebuilt
        return e


def function_depth(e: Any) -> int:
    """How many function applications (``\\log``, ``\\sin``, ``|x|``, ...) nest in the tree, at most.
    sympy evaluates nested transcendental functions in steps exponential in that nesting (an
    evaluated ``\\log(\\log(...))`` 8 deep took minutes), so :func:`rewards.math.parse.check_size`
    caps it. Bounded recursion: the caller caps the tree's depth.

    >>> x = sympy.Symbol("x")
    >>> function_depth(sympy.sqrt(sympy.log(sympy.sin(x) + 1))), function_depth(x**2)
    (2, 0)
    """
    if isinstance(e, sympy.MatrixBase):
        return max((function_depth(a) for a in e), default=0)
    if not isinstance(e, sympy.Basic) or not e.args:
        return 0
    return max(function_depth(a) for a in e.args) + isinstance(e, sympy.Function)


_LOG10_2, _LOG10_E = 0.30103, 0.43430


def digits_bound(e: Any) -> float:
    """An upper bound of the decimal orders of magnitude a tree's numbers span (digits of each
    integer, numerator and denominator; ``|x| log10 b`` for a power ``b^x``, ``0.43 |x|`` for
    ``e^x``), added over the tree. Two different values built from these numbers differ somewhere
    within about that many significant digits, so a numeric comparison carried to twice as many
    cannot call them equal (:func:`rewards.math.grade.expr_equal`). Bounded recursion: the caller
    caps the tree's depth.

    >>> digits_bound(sympy.Rational(1, 10**40)) > 40, digits_bound(sympy.sqrt(2) + sympy.exp(-1000)) > 434
    (True, True)
    """
    if isinstance(e, sympy.MatrixBase):
        return sum(digits_bound(a) for a in e)
    if isinstance(e, sympy.Rational):
        return max(abs(e.p).bit_length(), e.q.bit_length()) * _LOG10_2 + 1
    if isinstance(e, sympy.Float):
        return abs(e._mpf_[2] + e._mpf_[3]) * _LOG10_2 + e._prec * _LOG10_2 + 1
    if not isinstance(e, sympy.Basic) or not e.args:
        return 1.0
    sub = sum(digits_bound(a) for a in e.args)
    expo = e.args[0] if isinstance(e, sympy.exp) else e.args[1] if isinstance(e, sympy.Pow) else None
    if expo is None or not expo.is_number:
        return sub
    try:
        x = abs(complex(expo.evalf(15)))  # numbers the parser's size check bounded
    except (TypeError, ValueError, OverflowError):
        return sub
    scale = _LOG10_E if isinstance(e, sympy.exp) else digits_bound(e.args[0])
    return sub + scale * min(x, 1e7)


def _i_symbols(e: Any) -> set:
    return {s for s in getattr(e, "free_symbols", ()) if isinstance(s, sympy.Symbol) and s.name == "i"}


def complex_gold(gold: Any) -> bool:
    """Does the gold contain the imaginary unit? Yes when it has ``I`` in it, or when ``i`` is its
    only unknown (``3 + 4i``, ``-i``, ``\\frac{1}{2} - \\frac{\\sqrt{3}}{2}i``) and it is not an
    interval, set operation or (in)equality, where ``i`` is a variable or an index."""
    try:
        if gold.has(sympy.I):
            return True
        syms = getattr(gold, "free_symbols", set())
        if not syms or syms != _i_symbols(gold):
            return False
        return not gold.has(sympy.Interval, sympy.Rel, sympy.Union, sympy.Intersection, sympy.Complement)
    except (TypeError, AttributeError):
        return False


def with_imaginary_unit(gold: Any, pred: Any) -> tuple[Any, Any]:
    """``(gold, pred)`` with every symbol named ``i`` read as the imaginary unit, in both, when the
    gold is complex (:func:`complex_gold`); unchanged otherwise, where ``i`` stays a variable. So
    against ``3+4i``, ``4i+3`` and ``3+4i^5`` are equal and ``3+4j`` is not; against ``2``,
    ``(1+i)(1-i)`` is not equal (there ``i`` is an unknown, as before)."""
    if not complex_gold(gold):
        return gold, pred
    return _replace_i(gold), _replace_i(pred)


def _replace_i(e: Any) -> Any:
    syms = _i_symbols(e)
    if not syms:
        return e
    try:
        return e.xreplace({s: sympy.I for s in syms})
    except (TypeError, AttributeError, ValueError):
        return e
