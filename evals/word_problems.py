"""Seeded multi-step word problems (distance, shopping, discounts, percentages, work rates, averages, unit
conversions) with a GSM8K-style gold worked solution of one named equation per step, and train / test
splits that never overlap: a problem's split is a hash of its family, step count and numbers.

>>> train = make_word_problems("train", 40, seed=1)
>>> test = make_word_problems("test", 40, seed=1)
>>> assert not {p["question"] for p in train} & {p["question"] for p in test}
>>> row = make_word_problems("train", 1, steps=2, templates=["distance"])[0]
>>> row["answer"].splitlines()[-1] == "#### " + row["final"], row["steps"]
(True, 2)
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any, Sequence

from evals.word_templates import FAMILIES, Draft

TEST_BUCKETS = 5  # 1 in TEST_BUCKETS problems is held out
MIN_STEPS, MAX_STEPS = 2, 4
MAX_NUMBER = 9999  # every number in a question or solution has at most 4 digits
_DIGITS = re.compile(r"\d+")


def _key(template: str, steps: int, numbers: Sequence[int]) -> str:
    return f"{template}|{steps}|{','.join(str(int(x)) for x in numbers)}"


def _digest(template: str, steps: int, numbers: Sequence[int]) -> str:
    return hashlib.sha256(_key(template, steps, numbers).encode()).hexdigest()


def split_of(template: str, steps: int, numbers: Sequence[int]) -> str:
    """'test' or 'train': the split of the problem of ``template`` with ``steps`` steps and these numbers.

    >>> split_of("distance", 2, (120, 3, 4)) in ("train", "test")
    True
    """
    return "test" if int(_digest(template, steps, numbers)[:8], 16) % TEST_BUCKETS == 0 else "train"


def parse_steps(value: Any) -> tuple[int, int]:
    """The step knob as ``(lo, hi)``: an int (3), a range string ("2-4", "3") or a pair; ValueError otherwise.

    >>> parse_steps(3), parse_steps("2-4"), parse_steps((2, 3))
    ((3, 3), (2, 4), (2, 3))
    """
    if isinstance(value, bool):
        raise ValueError(f"steps must be an integer or a range like '2-4', got {value!r}")
    if isinstance(value, int):
        lo = hi = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{1,2}\s*(-\s*\d{1,2}\s*)?", value):
        head, _, tail = value.partition("-")
        lo, hi = int(head), int(tail or head)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(type(v) is int for v in value):
        lo, hi = value
    else:
        raise ValueError(f"steps must be an integer or a range like '2-4', got {value!r}")
    if not MIN_STEPS <= lo <= hi <= MAX_STEPS:
        raise ValueError(f"steps must lie in {MIN_STEPS}-{MAX_STEPS} (low <= high), got {value!r}")
    return lo, hi


def _families(templates: Sequence[str] | None) -> list[str]:
    names = list(FAMILIES) if templates is None else list(templates)
    unknown = [t for t in names if t not in FAMILIES]
    if unknown or not names:
        raise ValueError(f"unknown word-problem template {unknown[0] if unknown else None!r} "
                         f"(known: {', '.join(FAMILIES)})")
    return names


def _small(d: Draft, limit: int = MAX_NUMBER) -> bool:
    return all(int(x) <= limit for x in _DIGITS.findall(d.question + " ".join(d.lines)))


def _row(template: str, steps: int, d: Draft) -> dict[str, Any]:
    answer = "\n".join((*d.lines, f"#### {d.final}"))
    return {"id": f"word-{_digest(template, steps, d.numbers)[:12]}", "question": d.question, "answer": answer,
            "solution": answer, "final": str(d.final), "steps": steps, "template": template,
            "numbers": list(d.numbers)}


def make_word_problems(split: str, n: int, seed: int = 0, steps: int | tuple[int, int] | str = (2, 4),
                       templates: Sequence[str] | None = None, max_number: int = MAX_NUMBER) -> list[dict[str, Any]]:
    """``n`` distinct word problems of ``split`` ('train' or 'test'), each of a family in ``templates``
    (default: all of :data:`evals.word_templates.FAMILIES`) with ``steps`` steps (an exact count or a
    ``(lo, hi)`` range, drawn uniformly). Same arguments -> same problems; the first ``m`` of them do not
    depend on ``n``. ``max_number`` (at most :data:`MAX_NUMBER`) bounds every number of a question and its
    solution: smaller numbers, easier problems (a problem's split does not depend on it). ValueError on a bad
    split, step knob, template or bound, or when too few problems exist."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    lo, hi = parse_steps(steps)
    names = _families(templates)
    if isinstance(max_number, bool) or not isinstance(max_number, int) or not 10 <= max_number <= MAX_NUMBER:
        raise ValueError(f"max_number must be an integer in 10..{MAX_NUMBER}, got {max_number!r}")
    bound = "" if max_number == MAX_NUMBER else f"-max{max_number}"
    rng = random.Random(f"word-{split}-{seed}-{lo}-{hi}-{','.join(names)}{bound}")
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    misses, tries, pick = 0, 0, None
    while len(out) < n:
        if pick is None or tries > 100:  # a family keeps its turn until it draws one (so the mix stays even)
            pick, tries = (rng.choice(names), rng.randint(lo, hi)), 0
        template, k = pick
        d = FAMILIES[template](rng, k)
        key = None if d is None else _key(template, k, d.numbers)
        if d is None or key in seen or not _small(d, max_number) or split_of(template, k, d.numbers) != split:
            misses, tries = misses + 1, tries + 1
            if misses > 200 + 100 * n:
                raise ValueError(f"cannot draw {n} distinct {split} word problems for templates {names}, steps {lo}-{hi}, "
                                 f"numbers <= {max_number} (ask for fewer, or allow more steps or larger numbers)")
            continue
        seen.add(key)
        out.append(_row(template, k, d))
        pick = None
    return out


__all__ = ["FAMILIES", "MAX_NUMBER", "TEST_BUCKETS", "make_word_problems", "parse_steps", "split_of"]
