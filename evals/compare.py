"""Is run B better than run A on the same items? Paired tests, flipped items, a verdict line.

Binary item scores (greedy accuracy) use the exact McNemar test; continuous ones (per-item
pass@1 from several samples, graded scores) the paired bootstrap, with the Wilcoxon signed-rank
test as a second opinion (the bootstrap's p cannot go below 1 / (resamples + 1)). Runs on different tasks
or different items are refused: an unpaired difference says little about two checkpoints.

>>> from evals.result import EvalResult
>>> def run(scores):
...     recs = [{"id": str(i), "item_hash": str(i), "score": s} for i, s in enumerate(scores)]
...     return EvalResult("t", {"task": "t", "n_samples": 1, "binary": True}, {}, recs)
>>> c = compare(run([0, 0, 0, 1, 1]), run([1, 1, 1, 1, 0]))
>>> c.improved, c.regressed, c.test
(['0', '1', '2'], ['4'], 'exact McNemar')
>>> c.verdict
'no significant difference: B - A = +40.0 points (80.0% vs 40.0%), p = 0.625 (exact McNemar, 3 vs 1 flips, 5 items)'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from evals.result import EvalResult
from evals.stats import mcnemar_exact, paired_bootstrap, wilcoxon_signed_rank
from rltk.core.errors import UserError


@dataclass
class Comparison:
    task: str
    n_items: int
    test: str  # "exact McNemar" or "paired bootstrap"
    metric: str  # what the item score is: "accuracy", "pass@1 (n samples)", "score"
    a_mean: float
    b_mean: float
    diff: float  # b_mean - a_mean
    ci: tuple[float, float]  # 95% paired-bootstrap interval of the difference
    p_value: float
    improved: list[str]  # item ids where B scored higher than A
    regressed: list[str]  # item ids where B scored lower
    alpha: float = 0.05
    a_name: str = "A"
    b_name: str = "B"
    notes: list[str] = field(default_factory=list)
    p_floor: float = 0.0  # the smallest p the test can give (bootstrap: 1 / (resamples + 1)); reached = "p <= floor"
    p_wilcoxon: float | None = None  # graded scores: Wilcoxon signed-rank test of the per-item differences
    lower_is_better: bool = False  # e.g. the share of lucky answers: B is better when it is lower

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def verdict(self) -> str:
        pts = 100 * self.diff
        sign = "<=" if self.p_value <= self.p_floor else "="
        pval = f"p {sign} {self.p_value:.3g}" if self.p_value >= 0.001 else f"p {sign} {self.p_value:.1e}"
        detail = f"{self.test}, {len(self.improved)} vs {len(self.regressed)} flips, {self.n_items} items"
        if self.p_wilcoxon is not None:
            detail += f"; Wilcoxon signed-rank p = {self.p_wilcoxon:.2g}"
        level = f"({100 * self.b_mean:.1f}% vs {100 * self.a_mean:.1f}%)"
        a, b = self.a_name, self.b_name
        gain = -self.diff if self.lower_is_better else self.diff
        if self.significant and gain > 0:
            return f"{b} better than {a}: {pts:+.1f} points {level}, {pval} ({detail})"
        if self.significant and gain < 0:
            return f"{b} worse than {a}: {pts:+.1f} points {level}, {pval} ({detail})"
        return f"no significant difference: {b} - {a} = {pts:+.1f} points {level}, {pval} ({detail})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n_items": self.n_items,
            "test": self.test,
            "metric": self.metric,
            "a": self.a_name,
            "b": self.b_name,
            "a_mean": self.a_mean,
            "b_mean": self.b_mean,
            "diff": self.diff,
            "ci": list(self.ci),
            "p_value": self.p_value,
            "p_at_floor": self.p_value <= self.p_floor,
            "p_wilcoxon": self.p_wilcoxon,
            "alpha": self.alpha,
            "significant": self.significant,
            "improved": self.improved,
            "regressed": self.regressed,
            "lower_is_better": self.lower_is_better,
            "verdict": self.verdict,
            "notes": self.notes,
        }


def _metric_name(r: EvalResult) -> str:
    if not r.config.get("binary", True):
        return "score"
    return "accuracy" if r.n_samples == 1 else f"pass@1 ({r.n_samples} samples)"


ItemScore = Callable[[dict[str, Any]], "float | None"]  # a record -> its score (None: not measured)


def _record_score(record: dict[str, Any]) -> float:
    return float(record["score"])


def _paired_scores(a: EvalResult, b: EvalResult, wa: str, wb: str,
                   score: ItemScore = _record_score) -> tuple[list[str], list[float], list[float]]:
    """The item ids (in ``a``'s order) and both runs' scores on them; UserError unless both runs
    are of the same task, on the same items with the same content, and both graded or both pass/fail."""
    if a.task != b.task:
        raise UserError(f"cannot compare runs of different tasks: {wa} is {a.task!r}, {wb} is {b.task!r}")
    ids_a = {r["id"]: r for r in a.records}
    ids_b = {r["id"]: r for r in b.records}
    if len(ids_a) != len(a.records) or len(ids_b) != len(b.records):
        raise UserError("cannot compare: a result file lists the same item id twice")
    if set(ids_a) != set(ids_b):
        only_a = sorted(set(ids_a) - set(ids_b))
        only_b = sorted(set(ids_b) - set(ids_a))
        example = f"e.g. {only_a[0]!r} only in {wa}" if only_a else f"e.g. {only_b[0]!r} only in {wb}"
        raise UserError(
            f"cannot compare runs on different items: {len(only_a)} only in {wa}, {len(only_b)} only in {wb} ({example})"
        )
    for i, ra in ids_a.items():
        if ra["item_hash"] != ids_b[i]["item_hash"]:
            raise UserError(f"cannot compare: item {i!r} has different content in {wa} and {wb} (different data?)")
    if a.config.get("binary") != b.config.get("binary"):
        raise UserError(f"cannot compare a graded run with a pass/fail run ({wa} vs {wb})")
    order = [r["id"] for r in a.records]
    sa, sb = [score(ids_a[i]) for i in order], [score(ids_b[i]) for i in order]
    if None in sa or None in sb:
        where = wa if None in sa else wb
        raise UserError(f"cannot compare {getattr(score, '__name__', 'scores')}: {where} does not record it for every item")
    return order, [float(x) for x in sa], [float(x) for x in sb]


def _config_notes(a: EvalResult, b: EvalResult) -> list[str]:
    """The settings that differ between the runs (a difference may come from them, not the model)."""
    notes = []
    for key in ("n_samples", "temperature", "max_new_tokens", "few_shot", "dtype"):
        if a.config.get(key) != b.config.get(key):
            notes.append(f"{key} differs: {a.config.get(key)} vs {b.config.get(key)}")
    return notes


def compare(
    a: EvalResult,
    b: EvalResult,
    alpha: float = 0.05,
    n_resamples: int = 10_000,
    seed: int = 0,
    a_name: str = "A",
    b_name: str = "B",
    item_score: ItemScore | None = None,
    metric: str | None = None,
    lower_is_better: bool = False,
) -> Comparison:
    """Paired comparison of per-item scores of ``b`` against ``a`` (same task, same items).

    The test is the exact McNemar test when both runs have 0/1 item scores, else the paired
    bootstrap over items (``n_resamples``, ``seed``); the interval of the difference is always
    the paired bootstrap's. Raises UserError for different tasks or different item sets. ``item_score``
    (named ``metric``) compares another per-item score than the run's own, e.g. reasoning validity; its
    test is McNemar's when every score is 0 or 1.
    """
    order, sa, sb = _paired_scores(a, b, a.path or a_name, b.path or b_name, item_score or _record_score)
    improved = [i for i, x, y in zip(order, sa, sb) if y > x]
    regressed = [i for i, x, y in zip(order, sa, sb) if y < x]
    boot = paired_bootstrap(sa, sb, n_resamples=n_resamples, seed=seed)
    notes = _config_notes(a, b)
    floor, p_wilcoxon = 0.0, None
    binary = a.binary and b.binary if item_score is None else all(x in (0.0, 1.0) for x in sa + sb)
    if binary:
        test, p = "exact McNemar", mcnemar_exact(len(improved), len(regressed))
    else:
        test, p, floor = "paired bootstrap", boot.p_value, 1.0 / (n_resamples + 1)
        p_wilcoxon = wilcoxon_signed_rank(sa, sb)
    if metric is None:
        metric = _metric_name(a) if _metric_name(a) == _metric_name(b) else f"{_metric_name(a)} vs {_metric_name(b)}"
    n = len(order)
    return Comparison(
        task=a.task,
        n_items=n,
        test=test,
        metric=metric,
        a_mean=sum(sa) / n if n else 0.0,
        b_mean=sum(sb) / n if n else 0.0,
        diff=boot.mean_diff,
        ci=(boot.ci_low, boot.ci_high),
        p_value=p,
        improved=improved,
        regressed=regressed,
        alpha=alpha,
        a_name=a_name,
        b_name=b_name,
        notes=notes,
        p_floor=floor,
        p_wilcoxon=p_wilcoxon,
        lower_is_better=lower_is_better,
    )
