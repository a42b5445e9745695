"""Finding the answer: the final answer text of a completion (:func:`extract_answer`, each form
switchable by :class:`ExtractOptions`) and of a gold solution (:func:`gold_answer`).

>>> last_boxed("\\\\boxed{\\\\frac{1}{2}} then \\\\fbox{3}"), gold_answer("48 + 24 = 72 clips.\\n#### 72")
('3', '72')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rewards.core import completion_text


@dataclass(frozen=True)
class ExtractOptions:
    """Which answer forms :func:`extract_answer` looks for, in this order of preference."""

    boxed: bool = True  # last \boxed{...} / \fbox{...}, nested braces allowed
    hashes: bool = True  # "#### 72" (GSM8K)
    answer_is: bool = True  # "the answer is 72", "Final answer: 72"
    last_number: bool = True  # fallback: the last number in the text


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
