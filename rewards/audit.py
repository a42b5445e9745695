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
import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from rewards.compose import RewardSet
from rewards.legal import _norm, load_glossary
from rewards.math.extract import gold_answer

PROMPT_COLUMNS = ("prompt", "question", "problem", "input")
TEXT_COLUMNS = ("source", "original_text", "document", "context")


def _gold(row: dict[str, Any], gold_column: str | None) -> str | None:
    if gold_column and row.get(gold_column) is not None:
        return gold_answer(row[gold_column])
    return None


def attacks_for_row(row: dict[str, Any], gold_column: str | None = "answer", seed: int = 0,
                    honest: str | None = None) -> list[tuple[str, str]]:
    """``(attack name, completion)`` pairs for one row. Deterministic for a seed. ``honest``: the row's honest
    completion (e.g. a good summary), from which the summary attacks are made."""
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
    return out + _summary_attacks(row, honest)


_NEGATED = re.compile(r"\b(?:is not|are not|shall not|will not|does not|do not|may not|cannot|not|no|never)\s+", re.I)
_AUXILIARY = re.compile(r"\b(is|are|shall|will|may|must)\s+", re.I)


def flip_negation(text: str) -> str:
    """``text`` with its polarity flipped: the first negation dropped ("is not liable" -> "is liable"), or,
    when it has none, one added after the first auxiliary ("must indemnify" -> "must not indemnify")."""
    m = _NEGATED.search(text)
    if m:
        words = m.group(0).split()
        kept = "can " if words[0].lower() == "cannot" else f"{words[0]} " if len(words) > 1 else ""
        return text[:m.start()] + kept + text[m.end():]
    return _AUXILIARY.sub(lambda a: f"{a.group(1)} not ", text, count=1)


def _summary_attacks(row: dict[str, Any], honest: str | None) -> list[tuple[str, str]]:
    """Attacks on a summary reward: the source's legal terms as a bare list, every glossary term, and, given
    the honest summary, its negation flipped and it padded with the source."""
    source = next((str(row[c]) for c in TEXT_COLUMNS if isinstance(row.get(c), str) and row[c].strip()), None)
    out = []
    if source:
        terms = [e.term for e in load_glossary().present_in(_norm(source))]
        if terms:
            out.append(("terms stuffed", ", ".join(terms) + "."))
        out.append(("glossary stuffed", ", ".join(e.term for e in load_glossary().entries[:40]) + "."))
    if honest:
        flipped = flip_negation(honest)
        if flipped != honest:  # a summary with no negation and no auxiliary to negate has no flip to test
            out.append(("negation flipped", flipped))
        if source:
            out.append(("honest + source", f"{honest} {source}"))
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
    beats_honest: int | None = None  # rows where the attack scored at least the honest completion (None: no honest one)
    honest_mean: float | None = None  # the honest completions' mean total on those rows


def run_audit(reward_set: RewardSet, rows: list[dict[str, Any]], gold_column: str | None = "answer",
              high_threshold: float = 0.5, progress: Callable[[int], None] | None = None,
              honest_column: str | None = None) -> list[AttackReport]:
    """Each attack on each row, scored; with ``honest_column``, the row's honest completion is scored too
    (reported as ``honest``) and each attack counts the rows where it scored at least as much."""
    per: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        cols = {k: [v] for k, v in row.items() if k not in ("completion", "expected")}
        honest = str(row[honest_column]) if honest_column and row.get(honest_column) is not None else None
        honest_total = None
        attacks = attacks_for_row(row, gold_column, seed=i, honest=honest)
        for name, completion in ([("honest", honest)] if honest is not None else []) + attacks:
            t0 = time.perf_counter()
            scores = reward_set.score([completion], **cols)
            dt = time.perf_counter() - t0
            d = per.setdefault(name, {"rows": 0, "high": 0, "sum": 0.0, "none": 0.0, "failures": 0, "max": 0.0,
                                      "beats": 0, "honest_sum": 0.0})
            total = scores.total[0]
            if name == "honest":
                honest_total = total
            elif honest_total is not None:
                d["beats"] += total >= honest_total
                d["honest_sum"] += honest_total
            d["rows"] += 1
            d["high"] += total >= high_threshold
            d["sum"] += total
            d["none"] += sum(v[0] is None for v in scores.components.values()) / len(scores.components)
            d["failures"] += sum(scores.failures.values())
            d["max"] = max(d["max"], dt)
        if progress:
            progress(i + 1)
    judged = honest_column is not None
    return [AttackReport(name, d["rows"], d["high"], d["high"] / d["rows"], d["sum"] / d["rows"], d["none"] / d["rows"],
                         d["failures"], d["max"], d["beats"] if judged and name != "honest" else None,
                         d["honest_sum"] / d["rows"] if judged and name != "honest" else None)
            for name, d in per.items()]


def report_json(reports: list[AttackReport], reward: list[str], data: str, high_threshold: float) -> dict[str, Any]:
    return {"reward": reward, "data": data, "high_threshold": high_threshold,
            "hackable": [r.attack for r in reports if r.attack != "honest" and (r.beats_honest if r.beats_honest is not None else r.high)],
            "attacks": [asdict(r) for r in reports]}
