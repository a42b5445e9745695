"""Cheap, bounded text work on answers (in-process, no sympy): canonical text, exact comparison
text, plain numbers (``1,234``, ``0.5``, ``3/4``, ``\\frac{3}{4}``, ``50%``), shown decimals
(plain or in scientific notation) and how far a shown decimal may be from a value it rounds."""

from __future__ import annotations

import re
from fractions import Fraction

_SPACE_CMDS = re.compile(r"\\[,;:> ]|\\q?quad\b|~")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)|\\frac\s*(\d)\s*(\{)|\\frac\s*(\{[^{}]*\})\s*(\d)")
_SQRT_SHORT = re.compile(r"\\sqrt\s*(\d)")
# upright/italic/text i is the imaginary unit (ISO 80000-2), not a unit "\text{i}" to strip after a number
_IMAGINARY_CMD = re.compile(r"\\(?:text|textrm|textit|mathrm|mathit|operatorname)\s*\{\s*i\s*\}")
_ASSIGN = re.compile(r"^\s*(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*=\s*(?=[^=])")
# possessive quantifiers throughout: no backtracking on long adversarial answers
# a unit starts with a word of 2+ letters: "2x", "4i", "2k", "3R^2" are terms, not a number and a unit
_UNIT_WORDS = re.compile(r"^([-+]?[\d.,/]++%?)\s*+[a-zA-Z]{2,}+\.?\s*+(?:[a-zA-Z]++\.?\s*+){0,2}+(?:\^?\s*\{?[23]\}?)?$")
# words after a number that are mathematics, not a unit: "2 pi", "4 sqrt2", "2 or 3", "2 times 3" are not 2 or 4
_NOT_UNITS = frozenset("""pi sqrt root inf infty infinity ln log exp e sin cos tan cot sec csc arcsin arccos arctan
    sinh cosh tanh times cdot div over plus minus mod modulo choose factorial or and to by divided not no squared
    cubed power i j""".split())
_WORD = re.compile(r"[a-zA-Z]+")
_UNIT_TEXT = re.compile(r"\s*+\\(?:text|mbox|mathrm)\s*+\{[^{}]*+\}(?:\s*\^\s*\{?[23]\}?)?$")


def _frac_short(m: re.Match) -> str:
    a, b, c, d, e, f = m.groups()
    if a is not None:
        return f"\\frac{{{a}}}{{{b}}}"
    if c is not None:
        return f"\\frac{{{c}}}{{"
    return f"\\frac{e}{{{f}}}"


def normalize(s: str) -> str:
    """Canonical text of an answer: math delimiters, ``\\left``/``\\right``, spacing commands,
    ``\\dfrac``, degrees, dollar signs, unit ``\\text{}`` after a number, ``x =`` prefixes and a
    final period removed; ``\\mathrm{i}`` (``\\mathit``, ``\\text``) is written ``i``. Bounded:
    callers cap the length first.

    >>> normalize("$x = \\\\dfrac{1}{2}$.")
    '\\\\frac{1}{2}'
    >>> normalize("\\\\$32,\\\\!348")
    '32,348'
    >>> normalize("864 \\\\mbox{ inches}^2")
    '864'
    """
    s = s.strip()
    for a, b in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(a) and s.endswith(b) and len(s) >= len(a) + len(b):
            s = s[len(a):len(s) - len(b)].strip()
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = _IMAGINARY_CMD.sub("i", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "%").replace("\\{", "\\{").replace("\u2212", "-")
    s = _SPACE_CMDS.sub(" ", s.replace("\\!", ""))
    s = _DEGREE.sub("", s)
    s = _FRAC_SHORT.sub(_frac_short, s)
    s = _SQRT_SHORT.sub(lambda m: f"\\sqrt{{{m.group(1)}}}", s)
    s = s.strip().rstrip(".").strip()
    return _without_unit(s)


def _unit_words(text: str) -> bool:
    """Do these words name a unit (``cm``, ``square feet``, ``dollars``), not mathematics (``pi``,
    ``or 3``, ``times 3``, ``sqrt2``)?"""
    words = [w.lower() for w in _WORD.findall(text)]
    return bool(words) and words[0] not in _NOT_UNITS and not _NOT_UNITS.intersection(words[1:]) - {"squared", "cubed"}


def _without_unit(s: str) -> str:
    """The answer without a unit after its quantity, and without an ``x =`` prefix."""
    # units written as text after a quantity: "5.4 \text{ cents}", "15\mbox{ cm}^2"
    m = _UNIT_TEXT.search(s)
    if m and m.start() > 0 and s[m.start() - 1] in "0123456789}" and _unit_words(m.group(0).split("{", 1)[1]):
        s = s[:m.start()]
    whole = _TEXT_CMD.fullmatch(s)
    if whole:  # the whole answer is text: "\text{Evelyn}", "\text{(C)}"
        s = whole.group(1).strip()
    m = _UNIT_WORDS.match(s)
    if m:  # "18 dollars", "12 cm^2"; "10 percent" is "10%"
        rest = s[m.end(1):]
        if rest.strip().lower().rstrip(".") == "percent" and not m.group(1).endswith("%"):
            s = m.group(1) + "%"
        elif _unit_words(rest):
            s = m.group(1)
    if _ASSIGN.match(s) and s.count("=") == 1:
        s = _ASSIGN.sub("", s, count=1)
    return re.sub(r"\s+", " ", s).strip().rstrip(".").strip()


def compact(s: str) -> str:
    """Text for exact comparison: normalised, no spaces, lower case, ``(C)`` -> ``c``."""
    s = normalize(s).replace(" ", "").lower()
    if re.fullmatch(r"\(?[a-z]\)?", s):
        s = s.strip("()")
    return s


_NUM = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?|[+-]?\.\d+%?")
_FRAC_SLASH = re.compile(r"([+-]?)(\d+)/(\d+)")
_FRAC_TEX = re.compile(r"([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}")
MAX_NUMBER_CHARS = 40


def plain_number(s: str) -> tuple[Fraction, bool] | None:
    """``(value, is_percent)`` for a plain number (``1,234``, ``-0.5``, ``.35``, ``3/4``,
    ``\\frac{3}{4}``, ``12.5%``), else None. Exact (Fraction); bounded by length.

    >>> plain_number("1,234.5")
    (Fraction(2469, 2), False)
    >>> plain_number("\\\\frac{-3}{4}")
    (Fraction(-3, 4), False)
    """
    s = s.replace(" ", "")
    if not s or len(s) > MAX_NUMBER_CHARS:
        return None
    if _NUM.fullmatch(s):
        pct = s.endswith("%")
        return Fraction(s.rstrip("%").replace(",", "")), pct
    m = _FRAC_SLASH.fullmatch(s) or _FRAC_TEX.fullmatch(s)
    if m:
        num, den = int(m.group(2)), int(m.group(3))
        if den == 0:
            return None
        v = Fraction(num, den)
        return (-v if m.group(1) == "-" else v), False
    return None


def decimals_shown(s: str) -> int:
    """Digits after the decimal point of a written number (0 for fractions).

    >>> decimals_shown("0.330"), decimals_shown("12.5%"), decimals_shown("1/3")
    (3, 1, 0)
    """
    s = s.replace(" ", "").rstrip("%")
    return len(s.split(".", 1)[1]) if "." in s and "/" not in s and "frac" not in s else 0


_SCIENTIFIC = re.compile(r"([+-]?\d+(?:\.(\d+))?)(?:(?:\\times|\\cdot|×|\*)10\^\{?([+-]?\d{1,4})\}?|[eE]([+-]?\d{1,4}))")


def shown_decimal(s: str) -> tuple[Fraction, int] | None:
    """``(value, places)`` of a decimal written with at least 1 digit after the point, plainly
    (``0.33``) or in scientific notation (``1.41\\times10^{-10}``, ``6.02e23``: digits after the
    mantissa's point); ``places`` is the position of its last digit after the point (negative for
    large exponents): what a rounding of a value to those digits shows. None for anything else.

    >>> shown_decimal("0.330"), shown_decimal("1.41\\\\times 10^{-10}"), shown_decimal("6.02e23"), shown_decimal("3")
    ((Fraction(33, 100), 3), (Fraction(141, 1000000000000), 12), (Fraction(602000000000000000000000, 1), -21), None)
    """
    s = s.replace(" ", "")
    if len(s) > MAX_NUMBER_CHARS:
        return None
    pn = plain_number(s)
    if pn is not None:
        d = decimals_shown(s)
        return (pn[0], d) if d >= 1 else None
    m = _SCIENTIFIC.fullmatch(s)
    if not m or not m.group(2):
        return None
    exp = int(m.group(3) or m.group(4))
    return Fraction(m.group(1)) * Fraction(10) ** exp, len(m.group(2)) - exp


def terminating(v: Fraction) -> bool:
    """Does ``v`` have a finite decimal expansion (denominator 2^a 5^b)? Only such a value can equal a decimal."""
    d = v.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def rounding_tolerance(value: Fraction, places: int) -> Fraction:
    """How far a decimal whose last digit is ``places`` after the point may be from the exact
    ``value`` it rounds: half a unit of that digit; for one of at most 17 significant digits (a
    printed double, such as ``0.6666666666666666`` for 2/3), never below 1e-15 relative.

    >>> rounding_tolerance(Fraction(1, 3), 2) == Fraction(5, 1000) + Fraction(1, 3 * 10**15)
    True
    >>> rounding_tolerance(Fraction(1, 3), 30) == Fraction(5, 10**31)
    True
    """
    half = Fraction(1, 2) * Fraction(10) ** -places
    v = abs(value)
    if v == 0 or places + (v.numerator.bit_length() - v.denominator.bit_length()) * 0.30103 > 17:
        return half
    return half + v / 10**15
