"""Writes rows.jsonl and sft_rows.jsonl beside this file: generated arithmetic in TRL's conversational formats.

    python examples/trl_rewards/make_rows.py

rows.jsonl (GRPO): ``prompt`` (a system and a user message) and ``solution`` (the gold answer, which TRL's
``accuracy_reward`` parses with math_verify). sft_rows.jsonl (the SFT warm start): other problems as
``messages`` conversations whose last, assistant turn is the answer in the format the rewards ask for
(``<think>8 - 9 = -1</think> \\boxed{-1}``). Deterministic: the same files every time.
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.arithmetic import make_problems

SYSTEM = ("Think briefly inside <think> </think> tags, then write the final answer as \\boxed{<answer>}. "
          "Example: <think>3 + 4 = 7</think> \\boxed{7}")
ROWS = 96  # of the 100 one-digit + and - problems of the train split
SFT_ROWS = 400  # two-digit problems: not the GRPO rows


def main() -> None:
    out = Path(__file__).with_name("rows.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for p in make_problems("train", ROWS, seed=7, ops="+-", digits=1):
            prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p["question"]}]
            f.write(json.dumps({"prompt": prompt, "solution": p["answer"]}) + "\n")
    sft = Path(__file__).with_name("sft_rows.jsonl")
    with sft.open("w", encoding="utf-8") as f:
        for p in make_problems("train", SFT_ROWS, seed=8, ops="+-", digits=2):
            reply = f"<think>{p['question'].removeprefix('What is ').rstrip('?')} = {p['answer']}</think> \\boxed{{{p['answer']}}}"
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p["question"]},
                        {"role": "assistant", "content": reply}]
            f.write(json.dumps({"messages": messages}) + "\n")
    print(f"wrote {ROWS} rows to {out} and {SFT_ROWS} to {sft}")


if __name__ == "__main__":
    main()
