"""Finding the arithmetic claims (``48/2 = 24``) of a text in one linear pass: a tokenizer, the
expression scanner of each side of an ``=``, and the GSM8K calculator notes ``<<48/2=24>>``.

>>> [(c.left_text, c.right_text) for c in find_claims("Speed = 120 / 40 = 3 hours, 3 + 4 = 7 = 14/2")]
[('120 / 40', '3'), ('3 + 4', '7'), ('7', '14 / 2')]
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SIDE_TOKENS = 400  # a side with more tokens is not read (the parser refuses > 1000 characters anyway)
MAX_NOTE_CHARS = 300  # a "<<...>>" longer than this is not a calculator note
MAX_UNIT_WORDS = 3  # words after a number read as its unit ("3 hours", "120 km per hour")
OPS = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "×": "*", "·": "*", "⋅": "*", "/": "/", "÷": "/", "^": "^"}
CURRENCY = set("$€£")
# words that end a number's unit: prose around a claim, never part of it
STOP_WORDS = frozenset(
    "and or but so then is are was were be been being the a an to for with in on at by from if that this which who "
    "he she it they we you his her their its has have had of not as than each per plus minus over into because since "
    "thus therefore hence now also only just about around approximately all more less left would will can could "
    "should must do does did get gets got make makes made need needs what when where how many much there here these "
    "those them him me my our your us up out off down after before during until while every both no any some "
    "equals equal means gives".split())
MULTIPLY_WORDS = frozenset(("x", "times"))


@dataclass(slots=True)
class Token:
    kind: str  # N number, O operator, L "(", R ")", E "=", W word, S separator
    text: str  # N: digits as written without separators ("1200", "0.5"); O: ascii operator; W: lower case
    start: int
    end: int
    pct: bool = False  # N followed by "%"
    note: int = -1  # index of the calculator note just before this token (-1: none)
    approx: bool = False  # N followed by "..." (a decimal cut short)


@dataclass(frozen=True)
class Claim:
    """``left = right`` as found: token lists of both sides (units dropped) and where they are."""

    left: tuple[Token, ...] | None  # None: the left side is cut mid-expression ("X*5 + 1 = 31")
    right: tuple[Token, ...] | None  # None: the right side is not arithmetic ("= twenty", "= 16 + x")
    start: int
    end: int
    note: int  # -1 in the visible text; else the index of the calculator note it is in
    twin: int = -1  # a visible claim written next to calculator note ``twin`` (``48/2 = <<48/2=24>>24``)

    @property
    def left_text(self) -> str:
        return side_text(self.left or ())

    @property
    def right_text(self) -> str:
        return side_text(self.right or ())


def _digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _number(s: str, i: int) -> tuple[Token, int]:
    """The number token starting at ``i``: ``1,200``, ``0.5``, ``.35``, ``20%``."""
    n, j = len(s), i
    while j < n and _digit(s[j]):
        j += 1
    whole = s[i:j]
    if 1 <= len(whole) <= 3:  # thousands separators: 1,200 / 12,000,000 (exactly 3 digits per group)
        while j + 3 < n and s[j] == "," and all(_digit(c) for c in s[j + 1:j + 4]) and not (j + 4 < n and _digit(s[j + 4])):
            whole += s[j + 1:j + 4]
            j += 4
    text = whole or "0"
    if j + 1 < n and s[j] == "." and _digit(s[j + 1]):
        k = j + 1
        while k < n and _digit(s[k]):
            k += 1
        text += s[j:k]
        j = k
    approx = "." in text and (s.startswith("...", j) or s.startswith("…", j))  # "8.333...": cut, not rounded
    j += (3 if s.startswith("...", j) else 1) if approx else 0
    pct = j < n and s[j] == "%"
    return Token("N", text, i, j + pct, pct=pct, approx=approx), j + pct


def _symbol(s: str, i: int, prev: str) -> tuple[Token | None, int]:
    """An operator, bracket, ``=`` or separator at ``i`` (None for characters that are skipped)."""
    ch, nxt = s[i], s[i + 1] if i + 1 < len(s) else ""
    if ch == "*" and nxt == "*":
        return Token("O", "^", i, i + 2), i + 2
    if ch == "/" and nxt == "/":
        return Token("O", "//", i, i + 2), i + 2  # floor division: the parser refuses it (an unparsed claim)
    if ch in OPS:
        return Token("O", OPS[ch], i, i + 1), i + 1
    if ch in "√∛!" or (ch == ":" and prev.isdigit() and nxt.isdigit()):  # "7:50" is a time
        return Token("O", "?", i, i + 1), i + 1  # an operation the checker does not read: the claim is unparsed
    if ch in "()":
        return Token("L" if ch == "(" else "R", ch, i, i + 1), i + 1
    if ch == "=":
        if nxt == "=" or prev in "<>!=":  # ==, <=, >=, !=: comparisons, not claims
            return Token("S", ch, i, i + 1), i + 1 + (nxt == "=")
        return Token("E", ch, i, i + 1), i + 1
    if ch in CURRENCY or ch in " \t":
        return None, i + 1
    return Token("S", ch, i, i + 1), i + 1


def tokenize(s: str, offset: int = 0, notes: list[tuple[int, int]] | None = None) -> list[Token]:
    """Tokens of ``s`` (positions shifted by ``offset``). With ``notes`` (a list to fill), calculator
    notes ``<<...>>`` are cut out and recorded as ``(start, end)`` of their content; the token after
    one carries its index in ``note``."""
    toks: list[Token] = []
    i, n, close, pending = 0, len(s), -1, -1
    while i < n:
        ch = s[i]
        if notes is not None and ch == "<" and s.startswith("<<", i):
            if close < i + 2:
                close = s.find(">>", i + 2)  # monotone: found once per note, so the scan stays linear
            if close != -1 and close - i <= MAX_NOTE_CHARS and "\n" not in s[i:close]:
                notes.append((offset + i + 2, offset + close))
                pending, i = len(notes) - 1, close + 2
                continue
        if _digit(ch) or (ch == "." and i + 1 < n and _digit(s[i + 1])):
            tok, i = _number(s, i)
        elif (ch.isascii() and ch.isalpha()) or _unit_slash(s, i, toks, offset):
            j = i + 1
            while j < n and s[j].isascii() and s[j].isalpha():
                j += 1
            tok, i = Token("W", s[i:j].lower(), i, j), j  # "/h" of "km/h", "/hour" of "$12/hour": a unit word
        else:
            tok, i = _symbol(s, i, s[i - 1] if i else "")
            if tok is None:
                continue
        tok.start, tok.end, tok.note = tok.start + offset, tok.end + offset, pending
        pending = -1
        toks.append(tok)
    _resolve_words(toks)
    return _fractions(toks)


def _unit_slash(s: str, i: int, toks: list[Token], offset: int) -> bool:
    """Does a unit's denominator start at ``i``: ``/`` tight between a number or its unit and a word (``12/hour``, ``km/h``)?"""
    if s[i] != "/" or i + 1 >= len(s) or not (s[i + 1].isascii() and s[i + 1].isalpha()) or not toks:
        return False
    return toks[-1].end == i + offset and (toks[-1].kind == "N" or (toks[-1].kind == "W" and len(toks) > 1 and toks[-2].kind == "N"))


def _after_operand(toks: list[Token], k: int) -> bool:
    """Does token ``k`` follow an operand, maybe with its unit words (``2 hours x 60``, ``4 km/h x 2``)?"""
    j = k - 1
    while j > 0 and k - j <= MAX_UNIT_WORDS and _unit(toks, j):
        j -= 1
    return toks[j].kind in "NR"


def _resolve_words(toks: list[Token]) -> None:
    """``3 x 4``, ``2 hours x 60``, ``5 times 4``, ``20% of 50``: these words are multiplications."""
    for k in range(1, len(toks) - 1):
        t = toks[k]
        if t.kind != "W" or toks[k + 1].kind not in "NL":
            continue
        if (t.text in MULTIPLY_WORDS and _after_operand(toks, k)) or (t.text == "of" and toks[k - 1].kind == "N" and toks[k - 1].pct):
            toks[k] = Token("O", "*", t.start, t.end, note=t.note)


def _plain_int(t: Token) -> bool:
    return t.kind == "N" and t.text.isdigit() and not t.pct and len(t.text) <= 12


def _fractions(toks: list[Token]) -> list[Token]:
    """Fractions written as one number: the mixed number ``1 1/2`` and, after a spaced division,
    a tight fraction (``60 / 3/4`` is 60 divided by 3/4). Both become one token ``(p/q)``."""
    out: list[Token] = []
    k, n = 0, len(toks)
    while k < n:
        t = toks[k]
        b, sl, c = toks[k + 1:k + 4] if k + 3 < n else (t, t, t)  # (t, t, t) never matches below
        tight = (_plain_int(b) and sl.kind == "O" and sl.text == "/" and _plain_int(c)
                 and b.end == sl.start and sl.end == c.start and int(c.text) > 0)
        if tight and _plain_int(t) and t.end < b.start and int(b.text) < int(c.text):
            whole, num, den = int(t.text), int(b.text), int(c.text)
            out.append(Token("N", f"({whole * den + num}/{den})", t.start, c.end, note=t.note))
            k += 4
            continue
        if _plain_int(t) and b.kind == "W" and b.text == "and" and k + 4 < n and _mixed_tail(toks[k + 2:k + 5]):
            num, den = int(toks[k + 2].text), int(toks[k + 4].text)  # "1 and 1/4"
            out.append(Token("N", f"({int(t.text) * den + num}/{den})", t.start, toks[k + 4].end, note=t.note))
            k += 5
            continue
        if tight and t.kind == "O" and t.text == "/" and out and out[-1].end < t.start and t.end < b.start:
            out += [t, Token("N", f"({b.text}/{c.text})", b.start, c.end, note=b.note)]
            k += 4
            continue
        out.append(t)
        k += 1
    return out


def _mixed_tail(frac: list[Token]) -> bool:
    b, sl, c = frac
    return (_plain_int(b) and sl.text == "/" and _plain_int(c) and b.end == sl.start and sl.end == c.start
            and 0 < int(b.text) < int(c.text))


def _unit(toks: list[Token], j: int) -> bool:
    """Is token ``j`` a unit word: a word that is not prose, or one letter spaced after its number ("2 h")?"""
    t, p = toks[j], (toks[j - 1] if j else None)
    if t.kind != "W" or len(t.text) > 1:
        return t.kind == "W" and t.text not in STOP_WORDS
    return t.text not in "xai" and p is not None and p.kind == "N" and p.end < t.start  # "1.2Y" is not


def scan_right(toks: list[Token], i: int) -> int | None:
    """End index (exclusive) of the longest expression starting at token ``i`` (``i`` if none; None
    when an operator is followed by a word: ``= 16 + x``). Unit words after a number are read over,
    never part of the span's end; ``13(2)`` is a product."""
    n, j, depth, end, operand, units = len(toks), i, 0, i, True, 0
    while j < n and j - i < MAX_SIDE_TOKENS:
        t = toks[j]
        if operand:
            if t.kind == "O" and t.text in "+-" and (j == i or toks[j - 1].kind in "OL"):
                j += 1  # a sign
            elif t.kind == "L":
                depth, j = depth + 1, j + 1
            elif t.kind == "N":
                operand, j, units = False, j + 1, 0
                end = j if depth == 0 else end
            elif j > i and t.kind == "W" and t.text not in STOP_WORDS:
                return None  # "16 + x": an unknown, not arithmetic
            else:
                break
        elif _unit(toks, j) and units < MAX_UNIT_WORDS:
            units, j = units + 1, j + 1
        elif (t.kind == "N" or (t.kind == "W" and len(t.text) == 1)) and units == 0:
            return None  # "18 000", "1.2Y": not one number
        elif t.kind == "R" and depth > 0:
            depth, j = depth - 1, j + 1
            end = j if depth == 0 else end
        elif t.kind == "O":
            operand, j = True, j + 1
        elif t.kind == "L" and units == 0 and j + 1 < n and toks[j + 1].kind in "NL":
            operand = True  # implicit product: "5000(.50)"
        else:
            break
    return end


def _is_sign(toks: list[Token], op: int, before: Token, units: int) -> bool:
    """Is the ``+``/``-`` at ``op`` a sign, given the token ``before`` it (not an operand)? After an
    operator or "(", yes; after prose only when attached to its number ("is -5", not "total - 8")."""
    if toks[op].text not in "+-" or units:
        return False
    attached = op + 1 < len(toks) and toks[op].end == toks[op + 1].start
    return before.kind in "OL" or (attached and (before.kind in "ES" or (before.kind == "W" and before.text in STOP_WORDS)))


def scan_left(toks: list[Token], e: int) -> int | None:
    """Start index of the longest expression ending just before token ``e`` (``e`` if none; None
    when it is cut mid-expression: ``X*5 + 1``, ``(X+10)*3/2``, ``$100 000 x 10``)."""
    j, depth, start, want_end, units, pend = e - 1, 0, e, True, 0, -1  # pend: operator read last (-2: implicit)
    while j >= 0 and e - j <= MAX_SIDE_TOKENS:
        t = toks[j]
        if want_end:
            if _unit(toks, j) and units < MAX_UNIT_WORDS:
                units, j = units + 1, j - 1
            elif t.kind in "NR":
                depth, units, pend, j = depth + (t.kind == "R"), 0, -1, j - 1
                want_end = t.kind == "R"
                start = j + 1 if t.kind == "N" and depth == 0 else start
            elif pend == -1:
                break  # nothing read yet: a name or prose before "="
            elif pend >= 0 and _is_sign(toks, pend, t, units):
                want_end, start, pend = False, (pend if depth == 0 else start), -1  # t is looked at again
            else:
                return None  # an operator with no number before it
        elif t.kind == "L" and depth > 0:
            depth, j = depth - 1, j - 1
            start = j + 1 if depth == 0 else start
        elif t.kind == "O":
            want_end, pend, units, j = True, j, 0, j - 1
        elif t.kind == "W" and toks[j + 1].kind == "L" and t.end == toks[j + 1].start:
            return None  # a function: "sqrt(16)", "eval(1+1)"
        elif t.kind in "NR" and toks[j + 1].kind == "L":
            want_end, pend = True, -2  # implicit product: "13(2)"
        elif t.kind == "N":
            return None  # two numbers side by side
        else:
            break
    if depth > 0 or (j >= 0 and e - j > MAX_SIDE_TOKENS):
        return None
    if want_end and pend != -1:
        if pend >= 0 and toks[pend].text in "+-" and units == 0 and j < 0:
            return pend  # a leading sign at the very start
        return None
    return start


def operands(side: tuple[Token, ...]) -> tuple[Token, ...]:
    """The side without its unit words."""
    return tuple(t for t in side if t.kind != "W")


def is_bare(side: tuple[Token, ...]) -> bool:
    """A lone number, maybe signed: ``24``, ``-3``, ``$12``."""
    core = operands(side)
    return len(core) == 1 and core[0].kind == "N" or (len(core) == 2 and core[0].text in "+-" and core[1].kind == "N")


def side_text(side: tuple[Token, ...]) -> str:
    """A side as the parser reads it: ``3 * 4``, ``20% * 50``, ``(80 + 90) / 2``."""
    out: list[str] = []
    prev = ""
    for t in operands(side):
        if t.kind == "L" and prev in ("N", "R"):
            out.append("*")  # "13(2)"
        out.append(f"({t.text}/100)" if t.pct else t.text)  # not "%": the parser reads 168/20% as 168/20/100
        prev = t.kind
    return " ".join(out)


def _claims_in(toks: list[Token], note: int) -> list[Claim]:
    out: list[Claim] = []
    for k in [k for k, t in enumerate(toks) if t.kind == "E"]:
        a = scan_left(toks, k)
        if a == k:
            continue  # a name ("Speed = ...") or nothing: no claim
        b = scan_right(toks, k + 1) if a is not None else None
        if a is None:
            out.append(Claim(None, None, toks[k].start, toks[k].end, note))  # cut mid-expression: unparsed
            continue
        left, right = tuple(toks[a:k]), (tuple(toks[k + 1:b]) if b is not None and b > k + 1 else None)
        if any(t.kind == "N" and t.text[:1] == "0" and t.text[1:2].isdigit() for t in left + (right or ())):
            right = None  # "00 + 48", "16,0000": a time or a typo, not a number: unparsed
        if is_bare(left) and not (a > 0 and toks[a - 1].kind == "E" and right is not None and not is_bare(right)):
            continue  # "x = 24 = 24" restating; a lone "7 = 14/2" counts only inside a chain
        end = toks[b - 1].end if right else toks[k].end
        twin = next((t.note for t in toks[a:max(b or 0, k + 1)] if t.note >= 0), -1) if note < 0 else -1
        out.append(Claim(left, right, toks[a].start, end, note, twin))
    return out


def find_claims(text: str) -> list[Claim]:
    """Every ``left = right`` claim of ``text`` whose left side is arithmetic (chains give one per
    adjacent pair), the claims inside calculator notes first, in order."""
    notes: list[tuple[int, int]] = []
    visible = tokenize(text, 0, notes)
    claims: list[Claim] = []
    for idx, (a, b) in enumerate(notes):
        claims += _claims_in(tokenize(text[a:b], a), idx)
    return claims + _claims_in(visible, -1)
