"""Writes rows.jsonl beside this file: generated arithmetic in TRL's conversational prompt format.

    python examples/trl_rewards/make_rows.py

Each row: ``prompt`` (a system and a user message) and ``solution`` (the gold answer, which TRL's
``accuracy_reward`` parses with math_verify). Deterministic: the same file every time.
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.arithmetic import make_problems

SYSTEM = ("Think briefly inside <think> </think> tags, then write the final answer as \\boxed{<answer>}. "
          "Example: <think>3 + 4 = 7</think> \\boxed{7}")
ROWS = 96  # of the 100 one-digit + and - problems of the train split


def main() -> None:
    out = Path(__file__).with_name("rows.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for p in make_problems("train", ROWS, seed=7, ops="+-", digits=1):
            prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p["question"]}]
            f.write(json.dumps({"prompt": prompt, "solution": p["answer"]}) + "\n")
    print(f"wrote {ROWS} rows to {out}")


if __name__ == "__main__":
    main()
