"""``math_answer``: parse the final answer out of a completion, then verify it against the gold.

Two verbs, as in Math-Verify: :func:`extract_answer` (completion -> answer text; ``\\boxed{}``
with nested braces, ``#### x``, "the answer is x", last number, each switchable) and
:func:`verify` (gold, answer -> equal?). Gold and prediction are not symmetric: the gold may be
a GSM8K solution (``... #### 72``) or a MATH LaTeX answer (:func:`gold_answer`).

Verification is tiered so the common case is fast and nothing can hang:

1. normalised text equal, or both plain numbers (``1,234``, ``0.5``, ``1/2``, ``\\frac{1}{2}``,
   ``50%``) compared exactly with Fractions — in-process, length-capped, microseconds;
2. otherwise both sides are parsed to sympy by restricted parsers (:mod:`rewards.math.parse`) and
   compared (structure, numeric value, ``simplify(a - b) == 0``) in a sandbox worker process
   under a hard time limit (:mod:`rewards.sandbox`). A check that times out gives ``None`` and is
   reported as a failure of the reward, never a silent 0.

Written numbers are exact (``1e-12`` is not ``2e-12``, ``10^{20}`` is not ``10^{20}+1``); a decimal
with 1+ digits after the point (plain or in scientific notation) also counts as the rounding of
an irrational or non-terminating gold, within half a unit of its last digit
(:func:`rounding_tolerance`). ``i`` is the imaginary unit where the gold is complex
(:func:`complex_gold`: it has ``i`` as its only unknown, e.g. ``3 + 4i``), a variable elsewhere.

The modules, one verb each: :mod:`~rewards.math.extract` (find the answer),
:mod:`~rewards.math.normalization` (canonical text, plain numbers), :mod:`~rewards.math.parse`
(text -> sympy, restricted), :mod:`~rewards.math.tree` (work on parsed trees),
:mod:`~rewards.math.grade` (equal?), :mod:`~rewards.math.reward` (the ``math_answer`` reward).

>>> extract_answer("so the total is \\\\boxed{\\\\frac{1}{2}}.")
'\\\\frac{1}{2}'
>>> extract_answer("Natalia sold 48 + 24 = 72 clips.\\n#### 72")
'72'
>>> verify("0.5", "\\\\frac{1}{2}"), verify("1,000", "1000"), verify("72", "73")
(True, True, False)
>>> get_reward("math_answer")(["... so the answer is $\\\\frac{3}{4}$."], answer=["0.75"])
[1.0]
"""

from rewards.core import get_reward  # noqa: F401 (doctest)
from rewards.math.extract import ExtractOptions, extract_answer, gold_answer, last_boxed
from rewards.math.normalization import compact, decimals_shown, normalize, plain_number, shown_decimal
from rewards.math.tree import complex_gold, digits_bound, evaluated, function_depth, with_imaginary_unit
from rewards.math.parse import (
    MAX_PARSE_CHARS,
    TooLarge,
    Unparseable,
    check_size,
    exact_number,
    parse_answer,
    parse_latex,
    parse_plain,
)
from rewards.math.grade import (
    SYMBOLIC_CHECK,
    VerificationTimeout,
    VerifyOptions,
    bare_arithmetic,
    check_symbolic,
    equivalent,
    expr_equal,
    numbers_equal,
    rounding_tolerance,
    verify,
    verify_many,
)
from rewards.math.reward import MathAnswer  # registers math_answer

__all__ = [
    "ExtractOptions", "extract_answer", "gold_answer", "last_boxed",
    "compact", "decimals_shown", "normalize", "plain_number", "shown_decimal",
    "complex_gold", "digits_bound", "evaluated", "function_depth", "with_imaginary_unit",
    "MAX_PARSE_CHARS", "TooLarge", "Unparseable", "check_size", "exact_number", "parse_answer", "parse_latex",
    "parse_plain",
    "SYMBOLIC_CHECK", "VerificationTimeout", "VerifyOptions", "bare_arithmetic", "check_symbolic", "equivalent",
    "expr_equal", "numbers_equal", "rounding_tolerance", "verify", "verify_many",
    "MathAnswer",
]
