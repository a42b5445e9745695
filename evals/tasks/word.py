"""The ``word_problems`` task: held-out multi-step word problems from :mod:`evals.word_problems`, answered
step by step and scored by ``math_answer`` (against the gold ``#### n``) and ``format_answer``."""

from __future__ import annotations

from typing import Any

from evals.tasks.base import TASKS, Task, rows_id
from evals.tasks.math import HASH_SYSTEM, math_gold
from evals.word_problems import MAX_NUMBER, make_word_problems, parse_steps, split_of
from rewards import RewardSpec
from rewards.math import extract_answer
from rltk.core.errors import UserError
from rltk.core.rows import Rows, read_rows


def _demo(row: dict[str, Any]) -> str:
    """A demo's assistant turn: the worked solution, or the bare ``#### n`` of a row without one."""
    return str(row.get("solution") or row["answer"])


@TASKS.register("word_problems")
def word_problems_task(n: int = 500, data_seed: int = 0, steps: Any = "2-4", templates: Any = None,
                       max_number: int = MAX_NUMBER) -> Task:
    """``n`` held-out word problems (the ``test`` split, disjoint from the training source's ``train`` split
    by construction and asserted on load) with ``steps`` steps each (3 or a range "2-4"), of the families in
    ``templates`` (a comma-separated string or list; default all). The first ``m`` problems do not depend
    on ``n``; ``max_number`` bounds every number (smaller: easier). ``--data FILE`` evaluates the user's own rows (``question``, ``answer`` ending ``#### n``)."""
    try:
        lo, hi = parse_steps(steps)
    except ValueError as e:
        raise UserError(f"word_problems task: {e}") from e
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"word_problems task: n must be an integer >= 1, got {n!r}")
    families = templates.split(",") if isinstance(templates, str) else templates

    def generate(split: str, count: int) -> list[dict[str, Any]]:
        try:
            return make_word_problems(split, count, seed=data_seed, steps=(lo, hi), templates=families,
                                      max_number=max_number)
        except ValueError as e:
            raise UserError(f"word_problems task: {e}") from e

    def load(data: str | None) -> Rows:
        if data is not None:
            return read_rows(data)
        rows = generate("test", n)
        leaked = [r["id"] for r in rows if split_of(r["template"], r["steps"], r["numbers"]) != "test"]
        assert not leaked, f"training problems in the held-out split: {leaked[:3]}"
        return Rows(rows, [f"word_problems[test][{i}]" for i in range(len(rows))], f"word_problems:test:seed={data_seed}")

    def demos(data: str | None) -> Rows:
        rows = generate("train", 64)
        return Rows(rows, [f"word_problems[train][{i}]" for i in range(len(rows))], "word_problems:train")

    return Task(
        name="word_problems",
        description=f"{lo}-{hi}-step word problems (held-out split), worked step by step, answer as '#### n'",
        load=load,
        fields=("question", "answer"),
        system=HASH_SYSTEM,
        user=lambda r: str(r["question"]),
        rewards=(
            RewardSpec("math_answer", params={"gold_column": "answer"}, label="correct"),
            RewardSpec("format_answer", params={"style": "####"}, label="format"),
        ),
        correct="correct",
        format="format",
        extract=extract_answer,
        gold=math_gold,
        item_id=rows_id("id", "word"),
        demo=_demo,
        demo_source=demos,
        max_new_tokens=160,
        options={"n": n, "data_seed": data_seed, "steps": f"{lo}-{hi}", "templates": families, "max_number": max_number},
    )
