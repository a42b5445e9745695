"""The hackability audit: adversarial completions for each row, and how a reward scores them.

A reward that pays for an empty answer, the gold answer with no reasoning, several conflicting
answers, the prompt echoed back or a LaTeX bomb will be found and exploited by RL. ``audit``
builds these completions from each row (:func:`attacks_for_row`), scores them with the reward
set, and reports per attack the share of rows scored high, the mean, the share of None and the
slowest call.

>>> names = [a for a, _ in attacks_for_row({"prompt": "2+2?", "answer": "4"}, gold_column="answer")]
>>> names[:4]
['empty', 'whitespace', 'gold answer alone', 'answer repeated']
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from rewards.compose import RewardSet
from rewards.math.extract import gold_answer

PROMPT_COLUMNS = ("prompt", "question", "problem", "input")
TEXT_COLUMNS = ("source", "original_text", "document", "context")


def _gold(row: dict[str, Any], gold_column: str | None) -> str | None:
    if gold_column and row.get(gold_column) is not None:
        return gold_answer(row[gold_column])
    return None


def attacks_for_row(row: dict[str, Any], gold_column: str | None = "answer", seed: int = 0) -> list[tuple[str, str]]:
    """``(attack name, completion)`` pairs for one row. Deterministic for a seed."""
    rng = random.Random(seed)
    gold = _gold(row, gold_column)
    prompt = next((str(row[c]) for c in PROMPT_COLUMNS if isinstance(row.get(c), str)), "")
    out = [("empty", ""), ("whitespace", " \n\t \n ")]
    if gold is not None:
        out += [
            ("gold answer alone", gold),
            ("answer repeated", "\n".join([f"\\boxed{{{gold}}} #### {gold}"] * 50)),
            ("conflicting answers", " ".join(f"The answer is {v}. \\boxed{{{v}}}\n#### {v}\n" for v in ["0", "1", "-1", "2", "10", "100", gold])),
        ]
    out.append(("prompt echoed", prompt))
    for c in TEXT_COLUMNS:
        if isinstance(row.get(c), str) and row[c].strip():
            out.append((f"{c} echoed", row[c]))
    ramble = " ".join(rng.choice(["Let", "me", "think", "about", "this", "carefully", "so", "we", "have", "then",
                                  "wait", "actually", "hmm", "therefore", "the", "result", "is"]) for _ in range(6000))
    out.append(("long ramble", ramble + (f" So the answer is \\boxed{{{gold}}}." if gold is not None else "")))
    garbage = "".join(chr(rng.choice([rng.randint(0x80, 0x2FFF), rng.randint(0x1F300, 0x1FAFF), 0x200B, 0x202E, 0xFEFF]))
                      for _ in range(2000))
    out.append(("unicode garbage", garbage))
    out.append(("huge numbers", f"The answer is {'9' * 5000}. \\boxed{{10^{{10^{{10}}}}}} #### 1e99999"))
    out.append(("latex bomb", "\\boxed{9^{9^{9^{9^{9}}}}} " + "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "} "
                "\\boxed{(x+y+z)^{500}}"))
    return out


@dataclass
class AttackReport:
    attack: str
    rows: int
    high: int  # rows where the total scored >= high_threshold
    high_share: float
    mean: float
    none_share: float  # components that gave None (not applicable or failed), averaged
    failures: int
    max_seconds: float  # slowest scoring of this attack over the rows


def run_audit(reward_set: RewardSet, rows: list[dict[str, Any]], gold_column: str | None = "answer",
              high_threshold: float = 0.5, progress: Callable[[int], None] | None = None) -> list[AttackReport]:
    per: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        cols = {k: [v] for k, v in row.items() if k not in ("completion", "expected")}
        for name, completion in attacks_for_row(row, gold_column, seed=i):
            t0 = time.perf_counter()
            scores = reward_set.score([completion], **cols)
            dt = time.perf_counter() - t0
            d = per.setdefault(name, {"rows": 0, "high": 0, "sum": 0.0, "none": 0.0, "failures": 0, "max": 0.0})
            total = scores.total[0]
            d["rows"] += 1
            d["high"] += total >= high_threshold
            d["sum"] += total
            d["none"] += sum(v[0] is None for v in scores.components.values()) / len(scores.components)
            d["failures"] += sum(scores.failures.values())
            d["max"] = max(d["max"], dt)
        if progress:
            progress(i + 1)
    return [AttackReport(name, d["rows"], d["high"], d["high"] / d["rows"], d["sum"] / d["rows"], d["none"] / d["rows"],
                         d["failures"], d["max"]) for name, d in per.items()]


def report_json(reports: list[AttackReport], reward: list[str], data: str, high_threshold: float) -> dict[str, Any]:
    return {"reward": reward, "data": data, "high_threshold": high_threshold,
            "hackable": [r.attack for r in reports if r.high],
            "attacks": [asdict(r) for r in reports]}
