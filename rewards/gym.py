"""``gym_score``: a reasoning-gym dataset's own ``score_answer`` as a reward, on rows that carry the
entry (``gym_dataset``, ``gym_entry`` and optionally ``gym_config`` columns, as :mod:`evals.gym` writes them).

reasoning-gym is an optional peer (``pip install 'rltk[gym]'``), imported on first use only. Some of
its scorers parse the model's answer with sympy's ``parse_expr`` (``countdown``, ``puzzle24``), which
evaluates text: every call runs in a sandbox worker under ``timeout_s``, never in this process.

>>> extract_gym_answer("so x = 4\\n#### 3/4"), extract_gym_answer("<answer> 7 </answer>"), extract_gym_answer("\\\\boxed{5} #### 6")
('3/4', '7', '6')
>>> extract_gym_answer("the answer is 4", "auto") is None, extract_gym_answer(" 4 ", "none")
(True, '4')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from rewards.core import REWARDS, BuiltinReward, completion_text, report_failure
from rewards.math.extract import ExtractOptions, extract_answer, last_boxed
from rewards.sandbox import get_pool, in_worker
from rltk.core.errors import UserError

INSTALL_HINT = "pip install 'rltk[gym]'"
SCORE_TARGET = "rewards.gym:score_entry"  # what a sandbox worker runs for one answer
PREPARE_TARGET = "rewards.gym:prepare"  # warms a worker: imports reasoning-gym, builds the dataset
PREPARE_TIMEOUT_S = 120.0  # the first import of reasoning-gym takes seconds on a busy machine
_HASH_ONLY = ExtractOptions(boxed=False, hashes=True, answer_is=False, last_number=False)
_SCORERS: dict[str, Any] = {}  # per process: (dataset, config) as JSON -> the dataset object that scores


def reasoning_gym(why: str = "this") -> Any:
    """The ``reasoning_gym`` module, or a UserError saying how to install it."""
    try:
        import reasoning_gym as rg  # optional peer: imported only where it is needed
    except ImportError:
        raise UserError(f"{why} needs reasoning-gym: {INSTALL_HINT}") from None
    return rg


def _tag(text: str, tag: str) -> str | None:
    """Content of the last ``<tag>...</tag>`` (two linear scans, no regex)."""
    close = text.rfind(f"</{tag}>")
    if close < 0:
        return None
    start = text.rfind(f"<{tag}>", 0, close)
    return None if start < 0 else text[start + len(tag) + 2:close]


def extract_gym_answer(text: str, how: str = "auto") -> str | None:
    """The answer part of a completion: ``hash`` (``#### x``), ``boxed`` (last ``\\boxed{}``),
    ``answer_tag`` (last ``<answer>...</answer>``), ``auto`` (the last of those three forms in
    the text), ``none`` (the whole text). None when that form is absent or blank."""
    found = {
        "hash": lambda: extract_answer(text, _HASH_ONLY) if "####" in text else None,
        "boxed": lambda: last_boxed(text),
        "answer_tag": lambda: _tag(text, "answer"),
        "none": lambda: text,
    }
    if how == "auto":
        marks = {"hash": text.rfind("####"), "boxed": max(text.rfind("\\boxed"), text.rfind("\\fbox")),
                 "answer_tag": text.rfind("</answer>")}
        forms = [k for k, _ in sorted(marks.items(), key=lambda kv: -kv[1]) if marks[k] >= 0]
    else:
        forms = [how]
    for form in forms:
        ans = found[form]()
        if ans is not None and ans.strip():
            return ans.strip()
    return None


def scorer(dataset: str, config: dict[str, Any] | None = None) -> Any:
    """The reasoning-gym dataset object whose ``score_answer`` judges entries of ``dataset`` built
    with ``config`` (some scorers read the config, e.g. ``decimal_arithmetic``'s precision); cached."""
    key = json.dumps([dataset, config or {}], sort_keys=True)
    if key not in _SCORERS:
        rg = reasoning_gym("reward 'gym_score'")
        if dataset not in rg.factory.DATASETS:
            raise UserError(f"reward 'gym_score': unknown reasoning-gym dataset {dataset!r}")
        _SCORERS[key] = rg.create_dataset(dataset, size=1, seed=0, **(config or {}))
    return _SCORERS[key]


def prepare(dataset: str, config: dict[str, Any] | None = None) -> None:
    """Build (and cache) the scorer in this process; returns nothing to send back."""
    scorer(dataset, config)


def score_entry(dataset: str, entry: dict[str, Any], config: dict[str, Any] | None, answer: str) -> float:
    """``score_answer(answer, entry)`` of ``dataset``: reasoning-gym's own verdict, in [0, 1]."""
    return float(scorer(dataset, config).score_answer(answer, entry))


def _entry(value: Any) -> dict[str, Any] | None:
    """A row's ``gym_entry``: a mapping, or its JSON text (a CSV or TSV file holds text); else None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


@REWARDS.register("gym_score")
@dataclass(frozen=True)
class GymScore(BuiltinReward):
    """The row's reasoning-gym dataset scores the completion's answer (``extract``: which form is
    the answer, see :func:`extract_gym_answer`). 1.0 for full credit, else 0.0; with ``partial``,
    the dataset's own score (some give partial credit, e.g. ``fraction_simplification``). 0.0
    when no answer is found or it is longer than ``max_answer_chars``; None (and a reported
    failure) when the scorer raised or ran past ``timeout_s``."""

    extract: Literal["auto", "hash", "boxed", "answer_tag", "none"] = "auto"
    partial: bool = False
    max_answer_chars: int = 2000
    timeout_s: float = 5.0
    processes: int = 1

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.max_answer_chars < 1:
            raise ValueError("gym_score needs timeout_s > 0 and max_answer_chars >= 1")

    def required_columns(self) -> set[str]:
        return {"gym_dataset", "gym_entry"}

    def __call__(self, completions: list, **columns: Any) -> list[float | None]:
        missing = sorted(self.required_columns() - set(columns))
        if missing:
            raise UserError(f"reward 'gym_score' needs column(s) {', '.join(missing)} (rows from evals.gym.gym_rows "
                            f"or data.source: gym:NAME; has: {', '.join(sorted(columns)) or 'none'})")
        n = len(completions)
        configs = columns.get("gym_config") or [None] * n
        scores: list[float | None] = [None] * n
        todo, items = [], []
        for i, text in enumerate(completion_text(c) for c in completions):
            entry, name = _entry(columns["gym_entry"][i]), columns["gym_dataset"][i]
            if entry is None or not name:
                continue  # not a reasoning-gym row: not applicable
            ans = extract_gym_answer(text, self.extract)
            if ans is None or len(ans) > self.max_answer_chars:
                scores[i] = 0.0
                continue
            todo.append(i)
            items.append(((str(name), entry, configs[i] or None, ans), {}))
        for i, (value, failure) in zip(todo, self._score(items)):
            if failure is not None:
                report_failure(i, failure)
            else:
                scores[i] = value if self.partial else float(value >= 1.0)
        return scores

    def _score(self, items: list[tuple[tuple, dict]]) -> list[tuple[float, str | None]]:
        """``(score, failure)`` per item; in a sandbox worker unless already inside one."""
        if not items:
            return []
        if in_worker():  # the parent's deadline bounds this worker
            return [(score_entry(*args), None) for args, _ in items]
        pool = get_pool("verify", self.processes)
        kinds = {json.dumps([a[0], a[2] or {}], sort_keys=True): (a[0], a[2]) for a, _ in items}
        warm = pool.run(("func", PREPARE_TARGET), [(k, {}) for k in kinds.values()] * pool.size, PREPARE_TIMEOUT_S, chunk=1)
        bad = next((o for o in warm if not o.ok), None)
        if bad is not None:
            raise UserError(f"reward 'gym_score': could not load the reasoning-gym scorer: {bad.error}")
        out = pool.run(("func", SCORE_TARGET), items, self.timeout_s, chunk=1)
        return [(float(o.value), None) if o.ok else (0.0, f"gym_score {o.error or ('timed out' if o.timed_out else 'failed')}") for o in out]

