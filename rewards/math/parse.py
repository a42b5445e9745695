"""Restricted parsing of math answers into sympy objects, with size checks before any arithmetic.

Nothing here evaluates model text as code. Plain expressions (``3/4``, ``sqrt(2)/2``, ``2**10``)
go through :func:`parse_plain`, which walks a Python ``ast`` with a whitelist of node types and
builds sympy objects itself; LaTeX goes through ``latex2sympy2_extended`` (an ANTLR grammar whose
converter builds sympy objects directly — the parser Math-Verify uses), with number tokens
converted by :func:`exact_number` instead of ``sympy.Number(str)`` (which would ``sympify``).
Both first build the tree unevaluated and check its size (:func:`check_size`), so ``9^{9^{9^9}}``
is refused before any big-integer arithmetic starts; then the LaTeX tree's lazy arithmetic is
evaluated in one linear pass (:func:`rewards.math.tree.evaluated`). Written numbers are exact
(:func:`exact_number`). The heavy functions run inside a sandbox worker (see
:mod:`rewards.math.grade`), which also bounds their time.

>>> str(parse_plain("sqrt(8)/2"))
'sqrt(2)'
>>> parse_plain("exec(x)")
Traceback (most recent call last):
...
rewards.math.parse.Unparseable: call to 'exec' is not allowed
"""

from __future__ import annotations

import ast
import re
from typing import Any

import sympy

from rewards.math.tree import evaluated, function_depth

MAX_PARSE_CHARS = 1000  # longer answers are refused (MATH-500 golds are at most ~80 chars)
MAX_LOG10 = 10_000  # numbers beyond 10^10000 are refused before they are computed
MAX_EXPONENT = 10_000  # a power whose exponent exceeds this (numerically) is refused
MAX_DEPTH = 60  # nesting depth of the parsed tree
MAX_FUNCTION_DEPTH = 4  # nested function applications (MATH-500 golds: at most 1): sympy works exponentially in it


class Unparseable(ValueError):
    """The text is not an answer we can read (syntax, disallowed construct, or too large)."""


class TooLarge(Unparseable):
    pass


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
    out = _build(tree.body, 0, text.strip())
    if isinstance(out, sympy.Tuple) and not (s.strip().startswith("(") and s.strip().endswith(")")):
        return sympy.FiniteSet(*out)  # "1, -2": a list of solutions, in any order
    return out


def _build(node: ast.AST, depth: int, src: str) -> Any:
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
        return exact_number(ast.get_source_segment(src, node) or repr(v))  # as written: 1e-12 is 10^-12
    if isinstance(node, ast.Name):
        name = node.id.lower()
        return _CONSTS.get(name) or sympy.Symbol(name)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _build(node.operand, d, src)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _build(node.left, d, src), _build(node.right, d, src)
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
        return _FUNCS[fname](*[_build(a, d, src) for a in node.args])
    if isinstance(node, ast.Tuple):
        return sympy.Tuple(*[_build(e, d, src) for e in node.elts])
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
            x = abs(complex(sympy.N(evaluated(expo), 15)))  # sub[1] <= 6: bounded work
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
    """Refuse trees whose evaluation could blow up (huge powers, towers, factorials, functions
    nested more than ``MAX_FUNCTION_DEPTH`` deep)."""
    try:
        _log10_bound(e)
        if function_depth(e) > MAX_FUNCTION_DEPTH:
            raise TooLarge(f"functions nested more than {MAX_FUNCTION_DEPTH} deep")
    except (OverflowError, RecursionError) as err:
        raise TooLarge(str(err)) from None


# --- LaTeX ------------------------------------------------------------------------------------

_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,6}))?")


def exact_number(text: str) -> Any:
    """A written number (``12``, ``0.5``, ``.35``, ``1e-12``, ``6.72E5``) as an exact sympy Integer
    or Rational, never a Float: decimals and scientific notation compare exactly however small or
    large (``1e-12`` is not ``2e-12``; ``1e20`` is not ``10^{20} + 1``). No ``sympify``; numbers
    beyond 10^MAX_LOG10 (or below its inverse) are refused before they are computed.

    >>> exact_number("1e-12"), exact_number("0.250"), exact_number("12")
    (1/1000000000000, 1/4, 12)
    """
    t = text.replace(",", "").replace(" ", "").replace("_", "")
    m = _NUMBER.fullmatch(t)
    if not m or not (m.group(1) or m.group(2)):
        raise Unparseable(f"number token {text!r}")
    whole, frac = m.group(1), m.group(2) or ""
    exp = int(m.group(3) or 0) - len(frac)
    if len(whole) + len(frac) > MAX_LOG10 or abs(exp) > MAX_LOG10:
        raise TooLarge("number too long")
    digits = int(whole + frac or "0")
    if exp >= 0:
        return sympy.Integer(digits * 10**exp)
    return sympy.Rational(digits, 10**-exp)


_CONVERTER: Any = None


def _latex_converter() -> Any:
    global _CONVERTER
    if _CONVERTER is None:
        from latex2sympy2_extended import latex2sympy2 as l2s

        class SafeLatex2Sympy(l2s._Latex2Sympy):
            def parse_number(self, text: str) -> Any:  # the library's version calls sympy.Number(str)
                return exact_number(text)

            def convert_interval(self, expr: Any) -> Any:
                # Interval() queries its endpoints (real? start < end?): on lazy trees that takes 2^depth
                # steps, so the endpoints are built lazily, size-checked and evaluated first; the library
                # then decides interval or tuple as in its evaluated build
                outer = self.__dict__.get("convert_expr")
                lazy = outer or super().convert_expr
                self.convert_expr = lambda e: _checked(_lazily(lazy, e))
                try:
                    with sympy.evaluate(True):
                        return super().convert_interval(expr)
                finally:
                    if outer is None:
                        del self.convert_expr
                    else:
                        self.convert_expr = outer

        l2s.Number = lambda s: exact_number(str(s))  # used by the module's convert_number(): same guard
        _CONVERTER = (SafeLatex2Sympy, l2s)
    return _CONVERTER


def _checked(e: Any) -> Any:
    check_size(e)
    return evaluated(e)


def _lazily(convert: Any, node: Any) -> Any:
    with sympy.evaluate(False):
        return convert(node)


def parse_latex(s: str) -> Any:
    """LaTeX answer -> sympy, built unevaluated first and size-checked, then evaluated bottom-up."""
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
        lazy = None
    if lazy is None:  # some constructs (interval unions) only build evaluated
        lazy = convert()
    return _checked(lazy)  # evaluated in one linear pass: the library's evaluated build can take 2^depth steps


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
