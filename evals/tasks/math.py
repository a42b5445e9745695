"""The math tasks: ``arithmetic`` (generated, held-out split), ``gsm8k`` and ``math500``, scored
by the ``math_answer`` and ``format_answer`` rewards."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from evals.arithmetic import TEST_BUCKETS, capacity, make_problems, split_of, worked_solution
from evals.tasks.base import TASKS, Task, rows_id
from rewards import RewardSpec
from rewards.math import extract_answer, gold_answer
from rltk.core.errors import UserError
from rltk.core.rows import Rows, load_hub_rows, read_rows

ARITHMETIC_SYSTEM = "Answer with the result only, in the form '#### <answer>'."
HASH_SYSTEM = "Solve the problem step by step. Then give the final answer on its own last line in the form '#### <answer>'."
BOXED_SYSTEM = "Solve the problem step by step. Put the final answer in \\boxed{}."


def math_gold(row: dict[str, Any], column: str = "answer") -> str:
    """The gold answer of a math row (GSM8K's ``... #### n`` or a MATH answer), "" when none."""
    return gold_answer(row.get(column)) or ""


def _math_rewards(style: str) -> tuple[Any, ...]:
    return (
        RewardSpec("math_answer", params={"gold_column": "answer"}, label="correct"),
        RewardSpec("format_answer", params={"style": style}, label="format"),
    )


@TASKS.register("arithmetic")
def arithmetic_task(n: int | None = None, data_seed: int = 0, ops: str = "+-*", digits: int = 2, mul_digits: int | None = None,
                    mul_sign: str = "×", exclude_seed: int | None = None, exclude_n: int = 1000) -> Task:
    """Held-out arithmetic problems from :mod:`evals.arithmetic` (the ``test`` split, disjoint from
    ``train`` by construction and asserted on load): ``n`` of them (default: 1000, or fewer when the
    operand sizes allow fewer). The first ``m`` problems do not depend on ``n``, so ``--limit m``
    always sees the same items. ``mul_sign``: ``×`` (default) or ``*`` in the questions. ``exclude_seed``: leave out
    the first ``exclude_n`` problems of that seed (items *further* than another eval's, e.g. the main job's
    ``data_seed=0``, ``n=300``). ``--data FILE`` evaluates the user's own rows instead."""
    if mul_sign not in ("×", "*", "x"):
        raise UserError(f"arithmetic task: mul_sign must be '×', '*' or 'x', got {mul_sign!r}")

    def load(data: str | None) -> Rows:
        if data is not None:
            return read_rows(data)
        count = n
        if count is None:
            count = max(1, min(1000, capacity(ops, digits, mul_digits) // (TEST_BUCKETS + 1)))
        gen = dict(ops=ops, digits=digits, mul_digits=mul_digits)
        try:
            banned = set() if exclude_seed is None else {
                r["expr"] for r in make_problems("test", exclude_n, seed=exclude_seed, **gen)}
            rows = [r for r in make_problems("test", count + len(banned), seed=data_seed, mul_sign=mul_sign, **gen)
                    if r["expr"] not in banned][:count]
        except ValueError as e:
            raise UserError(f"arithmetic task: {e}") from e
        if len(rows) < count:
            raise UserError(f"arithmetic task: only {len(rows)} problems left after excluding seed {exclude_seed}'s")
        leaked = [r["id"] for r in rows if split_of(r["a"], r["op"], r["b"]) != "test"]
        assert not leaked, f"training problems in the held-out split: {leaked[:3]}"
        return Rows(rows, [f"arithmetic[test][{i}]" for i in range(len(rows))], f"arithmetic:test:seed={data_seed}")

    def demos(data: str | None) -> Rows:
        rows = make_problems("train", 64, seed=data_seed, ops=ops, digits=digits, mul_digits=mul_digits)
        return Rows(rows, [f"arithmetic[train][{i}]" for i in range(len(rows))], "arithmetic:train")

    return Task(
        name="arithmetic",
        description="a op b with + - x (held-out split), answer as '#### n'",
        load=load,
        fields=("question", "answer"),
        system=ARITHMETIC_SYSTEM,
        user=lambda r: str(r["question"]),
        rewards=_math_rewards("####"),
        correct="correct",
        format="format",
        extract=extract_answer,
        gold=math_gold,
        item_id=rows_id("id", "arith"),
        demo=lambda r: worked_solution(r) if {"a", "op", "b"} <= set(r) else f"#### {r['answer']}",
        demo_source=demos,
        max_new_tokens=64,
        options={"n": n, "data_seed": data_seed, "ops": ops, "digits": digits, "mul_digits": mul_digits,
                 "mul_sign": mul_sign, "exclude_seed": exclude_seed, "exclude_n": exclude_n},
    )


def _file_or_hub(hub_id: str, config: str | None, split: str) -> Callable[[str | None], Rows]:
    def load(data: str | None) -> Rows:
        return read_rows(data) if data is not None else load_hub_rows(hub_id, split, config)

    return load


def _sibling_train(hub_id: str, config: str | None) -> Callable[[str | None], Rows | None]:
    """Few-shot demos from ``train.jsonl`` beside the ``--data`` file, or the hub's train split;
    None (use the rows not being evaluated) when the local file has no such sibling."""

    def load(data: str | None) -> Rows | None:
        if data is None:
            return load_hub_rows(hub_id, "train", config)
        train = Path(data).expanduser().parent / "train.jsonl"
        if not train.is_file() or train.resolve() == Path(data).expanduser().resolve():
            return None
        return read_rows(train)

    return load


@TASKS.register("gsm8k")
def gsm8k_task(hub_id: str = "openai/gsm8k", split: str = "test") -> Task:
    """GSM8K grade-school word problems (Cobbe et al. 2021): hub ``openai/gsm8k`` or ``--data test.jsonl``."""
    return Task(
        name="gsm8k",
        description="grade-school math word problems, answer as '#### n'",
        load=_file_or_hub(hub_id, "main", split),
        fields=("question", "answer"),
        system=HASH_SYSTEM,
        user=lambda r: str(r["question"]),
        rewards=_math_rewards("####"),
        correct="correct",
        format="format",
        extract=extract_answer,
        gold=math_gold,
        item_id=rows_id(None, "gsm8k"),
        demo=lambda r: _gsm8k_demo(str(r["answer"])),
        demo_source=_sibling_train(hub_id, "main"),
        max_new_tokens=256,
        options={"hub_id": hub_id, "split": split},
    )


def _gsm8k_demo(answer: str) -> str:
    """A GSM8K worked solution without its calculator notes ``<<48/2=24>>``."""
    out, i = [], 0
    while i < len(answer):
        j = answer.find("<<", i)
        if j < 0:
            out.append(answer[i:])
            break
        k = answer.find(">>", j)
        if k < 0:
            out.append(answer[i:])
            break
        out.append(answer[i:j])
        i = k + 2
    return "".join(out)


@TASKS.register("math500")
def math500_task(hub_id: str = "HuggingFaceH4/MATH-500", split: str = "test") -> Task:
    """MATH-500 (Lightman et al. 2023's subset of Hendrycks MATH): hub ``HuggingFaceH4/MATH-500`` or ``--data``."""
    return Task(
        name="math500",
        description="competition math (MATH-500), answer in \\boxed{}",
        load=_file_or_hub(hub_id, None, split),
        fields=("problem", "answer"),
        system=BOXED_SYSTEM,
        user=lambda r: str(r["problem"]),
        rewards=_math_rewards("boxed"),
        correct="correct",
        format="format",
        extract=extract_answer,
        gold=math_gold,
        item_id=rows_id("unique_id", "math500"),
        demo=lambda r: str(r["solution"]) if r.get("solution") else f"\\boxed{{{r['answer']}}}",
        demo_source=None,
        max_new_tokens=512,
        options={"hub_id": hub_id, "split": split},
    )
