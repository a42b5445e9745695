"""Rewards as parallel Ray tasks (``distributed.reward_tasks``): each task scores a contiguous share of
the completions with a RewardSet built from the same specs, and the shares are merged back in order."""

from __future__ import annotations

import re
from typing import Any, Sequence

from rewards import RewardScores, RewardSet
from rltk.rollouts.ray_shares import split_contiguous


REWARD_TASK_CPUS = 0.5  # rewards are light; a fraction keeps them schedulable beside the rollout workers


def _score_share(reward_args: tuple, completions: list, columns: dict[str, Any]) -> Any:
    """Ray task body: score one share with a RewardSet built from the same specs (same time limits, same sandbox)."""
    specs, timeout_s, fallback, options = reward_args
    # built per task: the circuit breaker's count of timed-out calls does not carry over between Ray tasks
    return RewardSet(specs, timeout_s=timeout_s, fallback=fallback, **options).score(completions, **columns)


def merge_scores(parts: Sequence[Any], offsets: Sequence[int]) -> Any:
    """Join the RewardScores of contiguous shares (starting at ``offsets``) into one, as if scored at once.

    Totals and components concatenate, failures add up, seconds are the slowest share's (the shares ran in
    parallel), error messages keep their sample numbers relative to the whole batch; details concatenate
    (None for the samples of a share whose reward reported none).
    """
    first = parts[0]
    labels = list(first.components)
    errors: dict[str, list[str]] = {k: [] for k in labels}
    for part, off in zip(parts, offsets):
        for k in labels:
            errors[k] += [re.sub(r"^sample (\d+):", lambda m: f"sample {int(m.group(1)) + off}:", e)
                          for e in part.errors.get(k, [])]
    return RewardScores(
        total=[t for p in parts for t in p.total],
        components={k: [v for p in parts for v in p.components[k]] for k in labels},
        failures={k: sum(p.failures[k] for p in parts) for k in labels},
        seconds={k: max(p.seconds[k] for p in parts) for k in labels},
        errors=errors,
        failed_samples={k: [i + off for p, off in zip(parts, offsets) for i in p.failed_samples.get(k, [])] for k in labels},
        failed=[f for p in parts for f in (p.failed or [False] * len(p.total))],
        disabled=sorted({d for p in parts for d in p.disabled}),
        details=_merged_details(parts),
    )


def _merged_details(parts: Sequence[Any]) -> dict[str, list[dict | None]]:
    labels = sorted({k for p in parts for k in getattr(p, "details", {})})
    return {k: [d for p in parts for d in (p.details.get(k) or [None] * len(p.total))] for k in labels}


class RayRewardSet:
    """A ``RewardSet`` whose ``score`` runs as parallel Ray tasks, one per contiguous share of the completions.

    Each task scores its share with a RewardSet built from the same specs, so every sample keeps the same
    time limit, fallback and sandbox as in-process scoring, and the result is the same ``RewardScores``.
    Built here as well, to validate the specs and answer ``labels`` / ``required_columns`` / ``check_columns``.
    """

    def __init__(self, specs: Sequence[Any], timeout_s: float = 5.0, fallback: float | None = None,
                 shares: int = 2, options: dict[str, Any] | None = None):
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayRewardSet needs Ray running (create the Ray rollout backend first)")
        options = dict(options or {})
        self.local = RewardSet(specs, timeout_s=timeout_s, fallback=fallback, **options)
        self.labels = self.local.labels
        self.shares = max(1, int(shares))
        self._args = (list(specs), timeout_s, fallback, options)
        self._task = ray.remote(num_cpus=REWARD_TASK_CPUS, max_retries=1)(_score_share)

    def required_columns(self) -> set[str]:
        return self.local.required_columns()

    def check_columns(self, columns: Any, where: str) -> None:
        self.local.check_columns(columns, where)

    def score(self, completions: list, **columns: Any) -> Any:
        import ray

        n = len(completions)
        self.local.check_columns(columns, "score")  # before any task starts
        shares = split_contiguous(n, self.shares)
        if len(shares) <= 1:
            return self.local.score(completions, **columns)
        args_ref = ray.put(self._args)
        refs = []
        for a, b in shares:
            cols = {k: (v[a:b] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in columns.items()}
            refs.append(self._task.remote(args_ref, list(completions[a:b]), cols))
        return merge_scores(ray.get(refs), [a for a, _ in shares])
