"""Per-run metrics as pure functions: Wilson intervals, unbiased pass@k, maj@k, macro-F1, and
:func:`compute_metrics`, a run's summary from its records.

Each function takes plain numbers or lists (no model, no I/O) so it can be checked
against hand-computed values.

>>> round(pass_at_k(n=4, c=1, k=2), 4)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
0.5
>>> [round(x, 4) for x in wilson_interval(8, 10)]
[0.4902, 0.9433]
>>> majority_correct(["7", "5", "7", None], [True, False, True, False])
True
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

from rltk.core.errors import UserError

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Better than the normal ("Wald") interval near 0 and 1 and for small n: it never leaves
    [0, 1] and does not collapse to a point when all items pass or fail (Wilson 1927;
    Brown, Cai & DasGupta 2001). ``n == 0`` gives the uninformative (0, 1).

    ``successes`` may be fractional: the sum of per-item scores in [0, 1] (e.g. per-item pass@1).
    A score in [0, 1] with mean p has variance at most p(1 - p), so treating each item as one
    Bernoulli trial gives a conservative interval for the mean item score.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """95% interval for the mean of per-item scores in [0, 1] (per-item pass@1, graded scores):
    the Wilson interval with the scores' sum as successes — conservative (see
    :func:`wilson_interval`), and unlike the normal interval it does not collapse to a point
    when every item scores 0 or 1."""
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError("mean_interval needs scores in [0, 1]")
    return wilson_interval(float(sum(values)), len(values), z)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al. 2021, "Evaluating
    Large Language Models Trained on Code", eq. 1): ``1 - C(n-c, k) / C(n, k)``, computed as a
    product so it never overflows.

    The probability that at least one of ``k`` samples drawn without replacement from the ``n``
    is correct. ``k > n`` is a user error (the estimator is undefined there).
    """
    if k < 1:
        raise UserError(f"pass@k needs k >= 1, got k={k}")
    if k > n:
        raise UserError(f"pass@{k} needs at least {k} samples per item, got {n} (raise --samples or lower --k)")
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Is the most common extracted answer correct? Ties go to the answer seen first; samples with
    no extracted answer (None) do not vote; all None counts as wrong."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == top)
    return bool(correct[list(answers).index(winner)])


def majority_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """maj@k of one item from its ``n`` samples: the mean of ``majority_correct`` over the
    ``n // k`` disjoint consecutive chunks of ``k`` samples (one chunk when k == n)."""
    n = len(answers)
    if k < 1 or k > n:
        raise UserError(f"maj@{k} needs 1 <= k <= samples per item ({n})")
    chunks = n // k
    return sum(majority_correct(answers[j * k : (j + 1) * k], correct[j * k : (j + 1) * k]) for j in range(chunks)) / chunks


def default_ks(n_samples: int) -> list[int]:
    """1, 2, 4, ... up to n, plus n itself: the ks reported when the user names none."""
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n_samples]
    if n_samples not in ks:
        ks.append(n_samples)
    return ks


def classification_report(gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> dict:
    """Per-class accuracy (recall), precision and F1, plus macro-F1 over ``labels``.

    A prediction that is not one of ``labels`` (None) counts as wrong for its gold class and as
    a prediction of no class. Macro-F1 averages F1 over the labels that occur in ``gold`` or in
    ``pred`` (sklearn's convention for ``labels=None``), so classes absent from a ``--limit``
    slice do not drag the mean to zero.
    """
    per_class: dict[str, dict[str, float]] = {}
    seen = [lab for lab in labels if lab in set(gold) or lab in set(pred)]
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == lab and p == lab)
        support = sum(1 for g in gold if g == lab)
        predicted = sum(1 for p in pred if p == lab)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[lab] = {"support": support, "predicted": predicted, "accuracy": recall, "precision": precision, "f1": f1}
    macro = sum(per_class[lab]["f1"] for lab in seen) / len(seen) if seen else 0.0
    return {"per_class": per_class, "macro_f1": macro, "labels_averaged": seen}


# ----------------------------------------------------------------------------- a run's summary


def compute_metrics(
    records: list[dict[str, Any]],
    ks: Sequence[int],
    binary: bool,
    labels: Sequence[str] = (),
    reward_labels: Sequence[str] = (),
) -> dict[str, Any]:
    """Summary metrics of a run from its records (pure: the records carry everything needed)."""
    samples = [s for r in records for s in r["samples"]]
    n_samples = len(records[0]["samples"]) if records else 0
    m: dict[str, Any] = {"n_items": len(records), "n_samples": n_samples}
    m.update(_headline(records, binary, n_samples))
    if binary and ks:
        m.update(_at_k(records, ks, n_samples))
    fmt = [s["format_ok"] for s in samples if s.get("format_ok") is not None]
    m["format_rate"] = sum(fmt) / len(fmt) if fmt else None
    m["mean_completion_tokens"] = sum(s["tokens"] for s in samples) / len(samples) if samples else 0.0
    m["truncated_rate"] = sum(1 for s in samples if s["truncated"]) / len(samples) if samples else 0.0
    m["rewards"] = _reward_means(samples, reward_labels)
    m["reasoning"] = reasoning_metrics(samples)
    m["task_metrics"] = summarise(records) or None  # evals.task_metrics: e.g. the legal metrics
    if labels:
        gold = [r.get("label", "") for r in records]
        pred = [r["samples"][0]["answer"] for r in records]  # first sample (the greedy answer when greedy)
        rep = classification_report(gold, pred, labels)
        m["macro_f1"] = rep["macro_f1"]
        m["per_class"] = rep["per_class"]
    return m


def _headline(records: list[dict[str, Any]], binary: bool, n_samples: int) -> dict[str, Any]:
    """Accuracy with its Wilson interval (greedy), mean per-item pass@1 (sampled), or the mean graded score."""
    n_items = len(records)
    item_scores = [float(r["score"]) for r in records]
    mean = sum(item_scores) / n_items if n_items else 0.0
    if binary and n_samples == 1:
        successes = sum(1 for r in records if r["samples"][0]["correct"])
        return {
            "accuracy": successes / n_items if n_items else 0.0,
            "accuracy_ci": list(wilson_interval(successes, n_items)),
            "ci_method": "wilson",
        }
    if binary:  # mean per-item pass@1 = sampled accuracy
        return {"accuracy": mean, "accuracy_ci": list(mean_interval(item_scores)), "ci_method": "wilson over items, conservative"}
    return {"score": mean, "score_ci": list(mean_interval(item_scores)), "ci_method": "wilson over items, conservative"}


def _at_k(records: list[dict[str, Any]], ks: Sequence[int], n_samples: int) -> dict[str, Any]:
    """pass@k and maj@k for each k, averaged over items."""
    n_items = len(records)
    return {
        "pass@k": {str(k): sum(pass_at_k(n_samples, int(r["n_correct"]), k) for r in records) / n_items for k in ks},
        "maj@k": {
            str(k): sum(
                majority_at_k([s["answer"] for s in r["samples"]], [bool(s["correct"]) for s in r["samples"]], k) for r in records
            )
            / n_items
            for k in ks
        },
    }


def _reward_means(samples: list[dict[str, Any]], reward_labels: Sequence[str]) -> dict[str, Any]:
    """Per reward component: the mean where it applies, and the share of samples it applies to."""
    comp: dict[str, Any] = {}
    for lab in reward_labels:
        vals = [s["scores"].get(lab) for s in samples]
        applicable = [v for v in vals if v is not None]
        comp[lab] = {
            "mean": sum(applicable) / len(applicable) if applicable else None,
            "applicable": len(applicable) / len(vals) if vals else 0.0,
        }
    return comp


def _checked(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in samples if s.get("steps") is not None]


def reasoning_metrics(samples: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The run's reasoning summary over its samples; None when no sample was step-checked (an old result)."""
    checked = _checked(samples)
    if not checked:
        return None
    n = len(checked)
    valid = sum(1 for s in checked if s["reasoning_valid"])
    judged = [s for s in checked if s.get("lucky") is not None]
    lucky = sum(1 for s in judged if s["lucky"])
    correct = sum(1 for s in judged if s.get("correct"))
    steps = sum(s["steps"] for s in checked)
    return {
        "validity": valid / n,
        "validity_ci": list(wilson_interval(valid, n)),
        "lucky": lucky / len(judged) if judged else None,
        "lucky_ci": list(wilson_interval(lucky, len(judged))) if judged else None,
        "lucky_of_correct": lucky / correct if correct else None,
        "steps_per_completion": steps / n,
        "step_accuracy": sum(s["steps_valid"] for s in checked) / steps if steps else None,
        "shows_steps": sum(1 for s in checked if s["steps"]) / n,
        "n_samples": n,
    }


# ----------------------------------------------------------------------------- a task's own metrics


def item_value(record: dict[str, Any], name: str) -> float | None:
    """The mean of the item's samples' ``name`` (those that have it); None when none has it."""
    vals = [s.get("metrics", {}).get(name) for s in record.get("samples", [])]
    vals = [float(v) for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def names_in(records: Sequence[dict[str, Any]]) -> list[str]:
    """The metric names the records' samples carry, in first-seen order."""
    seen: dict[str, None] = {}
    for r in records:
        for s in r.get("samples", []):
            seen.update(dict.fromkeys(s.get("metrics") or {}))
    return list(seen)


def interval(values: Sequence[float]) -> tuple[float, float]:
    """95% interval of a mean: Wilson-style for values in [0, 1] (:func:`evals.metrics.mean_interval`),
    else the normal interval."""
    if all(0.0 <= v <= 1.0 for v in values):
        return mean_interval(values)
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return (mean - Z95 * sd / math.sqrt(n), mean + Z95 * sd / math.sqrt(n))


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric: ``mean`` over items (of each item's sample mean), ``ci`` (95%), ``n_items`` having it."""
    out: dict[str, dict[str, Any]] = {}
    for name in names_in(records):
        vals = [v for v in (item_value(r, name) for r in records) if v is not None]
        if vals:
            out[name] = {"mean": sum(vals) / len(vals), "ci": list(interval(vals)), "n_items": len(vals)}
    return out
