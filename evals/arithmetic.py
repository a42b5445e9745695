"""Seeded arithmetic problems with train / test splits that can never overlap.

Each problem ``a op b`` belongs to exactly one split, decided by a hash of its
canonical text (about 1 in 5 problems is a test problem), so the splits are
disjoint by construction whatever the seed or the number drawn.

>>> train = make_problems("train", 50, seed=1)
>>> test = make_problems("test", 50, seed=1)
>>> assert not {p["question"] for p in train} & {p["question"] for p in test}
>>> train[0]["answer"] == str(eval(train[0]["expr"]))  # doctest-only check on our own generated text
True
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

OPS = {"+": "+", "-": "-", "*": "×"}
TEST_BUCKETS = 5  # 1 in TEST_BUCKETS problems is held out


def split_of(a: int, op: str, b: int) -> str:
    h = int(hashlib.sha256(f"{a}{op}{b}".encode()).hexdigest()[:8], 16)
    return "test" if h % TEST_BUCKETS == 0 else "train"


def solve(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    raise ValueError(f"unknown operator {op!r}")


def capacity(ops: str = "+-*", digits: int = 2, mul_digits: int | None = None) -> int:
    """How many distinct problems ``a op b`` the operators and operand sizes allow (both splits together)."""
    md = digits if mul_digits is None else mul_digits
    return sum((10 ** (md if op == "*" else digits)) ** 2 for op in set(ops) if op in OPS)


def make_problems(
    split: str,
    n: int,
    seed: int = 0,
    ops: str = "+-*",
    digits: int = 2,
    mul_digits: int | None = None,
    mul_sign: str = "×",
) -> list[dict[str, Any]]:
    """``n`` distinct problems of ``split`` ('train' or 'test'); operands have up to ``digits`` digits
    (``mul_digits`` for ×, default ``digits``). Same arguments → same problems; ``mul_sign`` only changes how a
    product is written (``×`` or ``*``): the same problems in the other notation.

    >>> [p["question"] for p in make_problems("test", 40, seed=3, mul_sign="*") if p["op"] == "*"][:1]
    ['What is 73 * 51?']
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    bad = set(ops) - set(OPS)
    if bad or not ops:
        raise ValueError(f"ops must be drawn from '+-*', got {ops!r}")
    mul_digits = digits if mul_digits is None else mul_digits
    rng = random.Random(f"arith-{split}-{seed}-{ops}-{digits}-{mul_digits}")
    seen: set[tuple[int, str, int]] = set()
    out: list[dict[str, Any]] = []
    if n > capacity(ops, digits, mul_digits) // (TEST_BUCKETS + 1 if split == "test" else 2):
        raise ValueError(f"cannot draw {n} distinct {split} problems with digits={digits}")
    while len(out) < n:
        op = rng.choice(ops)
        d = mul_digits if op == "*" else digits
        a, b = rng.randrange(10**d), rng.randrange(10**d)
        if (a, op, b) in seen or split_of(a, op, b) != split:
            continue
        seen.add((a, op, b))
        out.append(
            {
                "id": f"arith-{split}-{len(out):05d}",
                "question": f"What is {a} {mul_sign if op == '*' else OPS[op]} {b}?",
                "answer": str(solve(a, op, b)),
                "expr": f"{a} {op} {b}",
                "a": a,
                "op": op,
                "b": b,
            }
        )
    return out


def worked_solution(row: dict[str, Any]) -> str:
    """A short worked answer in the ``####`` format, for SFT warm-start data."""
    a, op, b = row["a"], row["op"], row["b"]
    ans = solve(a, op, b)
    return f"{a} {OPS[op]} {b} = {ans}\n#### {ans}"
