"""Restricted parsing of math answers into sympy objects, and equivalence of two parsed answers.

Nothing here evaluates model text as code. Plain expressions (``3/4``, ``sqrt(2)/2``, ``2**10``)
go through :func:`parse_plain`, which walks a Python ``ast`` with a whitelist of node types and
builds sympy objects itself; LaTeX goes through ``latex2sympy2_extended`` (an ANTLR grammar whose
converter builds sympy objects directly — the parser Math-Verify uses), with number tokens
converted by :func:`_safe_number` instead of ``sympy.Number(str)`` (which would ``sympify``).
Both first build the tree unevaluated and check its size (:func:`check_size`), so ``9^{9^{9^9}}``
is refused before any big-integer arithmetic starts. The heavy functions run inside a sandbox
worker (see :mod:`rewards.math`), which also bounds their time.

>>> str(parse_plain("sqrt(8)/2"))
'sqrt(2)'
>>> equivalent(parse_answer("\\\\frac{1}{2}"), parse_answer("0.5"))
True
>>> parse_plain("exec(x)")
Traceback (most recent call last):
...
rewards.mathparse.Unparseable: call to 'exec' is not allowed
"""

from __future__ import annotations

import ast
import math
import re
from fractions import Fraction
from typing import Any

import sympy

MAX_PARSE_CHARS = 1000  # longer answers are refused (MATH-500 golds are at most ~80 chars)
MAX_LOG10 = 10_000  # numbers beyond 10^10000 are refused before they are computed
MAX_EXPONENT = 10_000  # a power whose exponent exceeds this (numerically) is refused
MAX_DEPTH = 60  # nesting depth of the parsed tree


class Unparseable(ValueError):
    """The text is not an answer we can read (syntax, disallowed construct, or too large)."""


class TooLarge(Unparseable):
    pass


# --- normalisation and the numeric fast path (cheap, bounded, used in-process) ----------------

_SPACE_CMDS = re.compile(r"\\[,;:> ]|\\q?quad\b|~")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)|\\frac\s*(\d)\s*(\{)|\\frac\s*(\{[^{}]*\})\s*(\d)")
_SQRT_SHORT = re.compile(r"\\sqrt\s*(\d)")
_ASSIGN = re.compile(r"^\s*(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*=\s*(?=[^=])")
# possessive quantifiers throughout: no backtracking on long adversarial answers
_UNIT_WORDS = re.compile(r"^([-+]?[\d.,/]++%?)\s*+(?:[a-zA-Z]++\.?\s*+){1,3}+(?:\^?\s*\{?[23]\}?)?$")
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
    final period removed. Bounded: callers cap the length first.

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
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "%").replace("\\{", "\\{").replace("\u2212", "-")
    s = _SPACE_CMDS.sub(" ", s.replace("\\!", ""))
    s = _DEGREE.sub("", s)
    s = _FRAC_SHORT.sub(_frac_short, s)
    s = _SQRT_SHORT.sub(lambda m: f"\\sqrt{{{m.group(1)}}}", s)
    s = s.strip().rstrip(".").strip()
    # units written as text after a quantity: "5.4 \text{ cents}", "15\mbox{ cm}^2"
    m = _UNIT_TEXT.search(s)
    if m and m.start() > 0 and s[m.start() - 1] in "0123456789}":
        s = s[:m.start()]
    whole = _TEXT_CMD.fullmatch(s)
    if whole:  # the whole answer is text: "\text{Evelyn}", "\text{(C)}"
        s = whole.group(1).strip()
    m = _UNIT_WORDS.match(s)
    if m:  # "18 dollars", "12 cm^2"
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


def _terminating(v: Fraction) -> bool:
    d = v.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def decimals_shown(s: str) -> int:
    s = s.replace(" ", "").rstrip("%")
    return len(s.split(".", 1)[1]) if "." in s and "/" not in s and "frac" not in s else 0


def numbers_equal(gold: tuple[Fraction, bool], pred: tuple[Fraction, bool], pred_text: str, rounding: bool = True) -> bool:
    """Exact equality of two plain numbers, allowing a percent sign on either side
    (``50%`` = ``50`` = ``0.5``) and, when ``rounding``, a decimal with at least 2 shown
    digits that rounds a non-terminating gold (``0.33`` for ``1/3``)."""
    g, gp = gold
    p, pp = pred
    candidates = {p} | ({p / 100} if pp else set())
    golds = {g} | ({g / 100} if gp else set()) | ({g * 100} if pp and not gp else set())
    if candidates & golds:
        return True
    d = decimals_shown(pred_text)
    if rounding and d >= 2 and not _terminating(g):
        return round(g, d) == p
    return False


# --- restricted plain-expression parser -------------------------------------------------------

_FUNCS = {
    "sqrt": sympy.sqrt, "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "log": sympy.log,
    "ln": sympy.log, "exp": sympy.exp, "abs": sympy.Abs, "cbrt": sympy.cbrt,
}
_CONSTS = {"pi": sympy.pi, "π": sympy.pi, "e": sympy.E, "oo": sympy.oo, "inf": sympy.oo, "infinity": sympy.oo}
_PLAIN_OK = re.compile(r"[0-9a-zA-Zπ_+\-*/^().,% ]+")


def parse_plain(s: str) -> Any:
    """Parse a plain (non-LaTeX) expression with a whitelisted ``ast`` walk; never evaluates text.
    ``^`` is power; names become symbols (lower case, as the LaTeX parser does)."""
    if len(s) > MAX_PARSE_CHARS:
        raise TooLarge(f"answer longer than {MAX_PARSE_CHARS} characters")
    if not _PLAIN_OK.fullmatch(s):
        raise Unparseable("not a plain expression")
    text = s.replace("^", "**").replace("%", "*(1/100)")
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text) if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", s.strip()) else text
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise Unparseable(f"syntax: {e}") from None
    out = _build(tree.body, 0)
    if isinstance(out, sympy.Tuple) and not (s.strip().startswith("(") and s.strip().endswith(")")):
        return sympy.FiniteSet(*out)  # "1, -2": a list of solutions, in any order
    return out


def _build(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TooLarge("expression nested too deeply")
    d = depth + 1
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Unparseable(f"constant {v!r} is not a number")
        if isinstance(v, int):
            if v.bit_length() > MAX_LOG10 * 3.33:
                raise TooLarge("integer too large")
            return sympy.Integer(v)
        return sympy.Float(repr(v)) if math.isfinite(v) else sympy.oo
    if isinstance(node, ast.Name):
        name = node.id.lower()
        return _CONSTS.get(name) or sympy.Symbol(name)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _build(node.operand, d)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _build(node.left, d), _build(node.right, d)
        op = type(node.op)
        if op is ast.Add:
            return a + b
        if op is ast.Sub:
            return a - b
        if op is ast.Mult:
            return a * b
        if op is ast.Div:
            return a / b
        if op is ast.Pow:
            check_size(sympy.Pow(a, b, evaluate=False))
            return a**b
        raise Unparseable(f"operator {op.__name__} is not allowed")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise Unparseable("only simple function calls are allowed")
        fname = node.func.id.lower()
        if fname not in _FUNCS:
            raise Unparseable(f"call to {node.func.id!r} is not allowed")
        return _FUNCS[fname](*[_build(a, d) for a in node.args])
    if isinstance(node, ast.Tuple):
        return sympy.Tuple(*[_build(e, d) for e in node.elts])
    raise Unparseable(f"{type(node).__name__} is not allowed")


# --- size guard on unevaluated trees ----------------------------------------------------------

def _log10_bound(e: Any, depth: int = 0) -> float:
    """Upper bound of log10 |e| for the numeric parts of an unevaluated tree (symbols count as 1);
    raises TooLarge when a value, exponent or factorial argument is beyond the limits."""
    if depth > 4 * MAX_DEPTH:
        raise TooLarge("expression nested too deeply")
    if isinstance(e, sympy.Integer):
        bits = abs(int(e)).bit_length()
        if bits > MAX_LOG10 * 3.33:
            raise TooLarge("integer too large")
        return bits * 0.30103
    if isinstance(e, sympy.Rational):
        return max(abs(e.p).bit_length(), e.q.bit_length()) * 0.30103
    if isinstance(e, sympy.Float):
        m, ex = sympy.Float(e)._mpf_[1], sympy.Float(e)._mpf_[2]
        return max(0.0, (int(m).bit_length() + ex) * 0.30103)
    if not isinstance(e, sympy.Basic) or not e.args:
        return 1.0
    sub = [_log10_bound(a, depth + 1) for a in e.args]
    if isinstance(e, sympy.Pow):
        base, expo = e.args
        if base in (sympy.S.Zero, sympy.S.One, sympy.S.NegativeOne):
            return 1.0
        if expo.is_number:
            if sub[1] > 6:
                raise TooLarge("exponent too large")
            x = abs(complex(sympy.N(expo, 15)))
            if x > MAX_EXPONENT:
                raise TooLarge(f"exponent {x:.3g} beyond {MAX_EXPONENT}")
            r = max(sub[0], 1.0) * max(x, 1.0)
        else:
            r = sub[0] + sub[1]
    elif isinstance(e, (sympy.factorial, sympy.factorial2, sympy.binomial, sympy.gamma)):
        if any(a.is_number and sb > 4 for a, sb in zip(e.args, sub)):
            raise TooLarge("factorial argument too large")
        r = sum(10**min(sb, 4) * 4 for sb in sub)
    elif isinstance(e, sympy.Mul):
        r = sum(sub)
    else:
        r = max(sub) + 1.0
    if r > MAX_LOG10:
        raise TooLarge(f"value beyond 10^{MAX_LOG10}")
    return r


def check_size(e: Any) -> None:
    """Refuse trees whose evaluation could blow up (huge powers, towers, factorials)."""
    try:
        _log10_bound(e)
    except (OverflowError, RecursionError) as err:
        raise TooLarge(str(err)) from None


# --- LaTeX ------------------------------------------------------------------------------------

_SAFE_NUMBER = re.compile(r"[0-9]*\.?[0-9]+")


def _safe_number(text: str) -> Any:
    """Number token to sympy without ``sympify``: Integer, or Rational/Float of digits only."""
    t = text.replace(",", "").replace(" ", "")
    if not _SAFE_NUMBER.fullmatch(t):
        raise Unparseable(f"number token {text!r}")
    if len(t) > MAX_LOG10:
        raise TooLarge("number too long")
    if "." not in t:
        return sympy.Integer(int(t))
    return sympy.Float(t, max(15, len(t)))


_CONVERTER: Any = None


def _latex_converter() -> Any:
    global _CONVERTER
    if _CONVERTER is None:
        from latex2sympy2_extended import latex2sympy2 as l2s

        class SafeLatex2Sympy(l2s._Latex2Sympy):
            def parse_number(self, text: str) -> Any:  # the library's version calls sympy.Number(str)
                return _safe_number(text)

        l2s.Number = lambda s: _safe_number(str(s))  # used by the module's convert_number(): same guard
        _CONVERTER = (SafeLatex2Sympy, l2s)
    return _CONVERTER


def parse_latex(s: str) -> Any:
    """LaTeX answer -> sympy, built unevaluated first and size-checked, then evaluated."""
    if len(s) > MAX_PARSE_CHARS:
        raise TooLarge(f"answer longer than {MAX_PARSE_CHARS} characters")
    depth = 0
    for ch in s:  # the ANTLR parser recurses per level: refuse deep nesting up front
        depth += ch in "{([" or -(ch in "})]")
        if depth > MAX_DEPTH:
            raise TooLarge("braces nested too deeply")
    cls, l2s = _latex_converter()
    text = l2s.normalize_latex(s, l2s.NormalizationConfig())

    def convert() -> Any:
        try:
            return cls(config=l2s.ConversionConfig()).parse(text)
        except Unparseable:
            raise
        except RecursionError:
            raise TooLarge("expression nested too deeply") from None
        except Exception as e:  # the parser's own syntax errors
            raise Unparseable(f"latex: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None

    try:
        with sympy.evaluate(False):
            lazy = convert()
    except TooLarge:
        raise
    except Unparseable:
        lazy = None  # some constructs (interval unions) only build evaluated
    if lazy is not None:
        check_size(lazy)
    return convert()


def parse_answer(s: str) -> Any:
    """An answer string (already normalised) -> sympy object: plain parser first, LaTeX otherwise."""
    s = s.strip()
    if not s:
        raise Unparseable("empty")
    if "\\" not in s and "{" not in s and "[" not in s:
        try:
            return _strip_assignment(parse_plain(s))
        except TooLarge:
            raise
        except Unparseable:
            pass
    return _strip_assignment(parse_latex(s))


def _strip_assignment(e: Any) -> Any:
    """``x = 5`` -> ``5``; ``x \\in [a, b]`` -> the interval (the variable is not the answer)."""
    if isinstance(e, sympy.Eq) and isinstance(e.lhs, sympy.Symbol):
        return e.rhs
    return e


# --- equivalence ------------------------------------------------------------------------------

def equivalent(gold: Any, pred: Any) -> bool:
    """True only when ``pred`` is shown equal to ``gold``: structurally, numerically (1e-9
    relative), or by ``simplify(gold - pred) == 0``; tuples in order, sets in any order,
    intervals by endpoints and openness, matrices elementwise."""
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
    if a == b:
        return True
    if a.is_Symbol and b.is_Symbol:
        return str(a).lower() == str(b).lower()
    if a.is_number and b.is_number:
        try:
            va, vb = complex(sympy.N(a, 30)), complex(sympy.N(b, 30))
        except (TypeError, ValueError, OverflowError):
            va = vb = None
        if va is not None and vb is not None:
            return abs(va - vb) <= 1e-9 * max(1.0, abs(va))
    if a.free_symbols != b.free_symbols:
        return False  # "x + 1" is not the answer "3", whatever x is
    verdict = _equal_at_points(a, b)
    if verdict is not None:
        return verdict
    try:
        return sympy.simplify(a - b) == 0
    except Exception:  # noqa: BLE001 - sympy could not decide: not shown equal
        return False


_POINTS = [(0.4142135623, 0.7320508075, 0.2360679774), (0.6180339887, 0.3166247903, 0.5857864376),
           (0.8284271247, 0.1547005383, 0.4494897427)]


def _equal_at_points(a: Any, b: Any) -> bool | None:
    """Identity test of two expressions in the same symbols at three fixed irrational-looking
    points in (0, 1) (Schwartz-Zippel style; cheap where ``simplify`` can take minutes, e.g.
    ``(x+y+z)^500``). None when they cannot be evaluated there (then ``simplify`` decides)."""
    syms = sorted(a.free_symbols, key=str)
    try:
        for point in _POINTS:
            subs = {s: sympy.Float(point[i % 3] + 0.01 * (i // 3), 30) for i, s in enumerate(syms)}
            va, vb = complex(a.evalf(30, subs=subs)), complex(b.evalf(30, subs=subs))
            if not (math.isfinite(abs(va)) and math.isfinite(abs(vb))):
                return None
            if abs(va - vb) > 1e-9 * max(1.0, abs(va)):
                return False
        return True
    except (TypeError, ValueError, OverflowError, ZeroDivisionError, AttributeError):
        return None
