"""What one GRPO step leaves behind: its phase times, the metrics record (one line of
``metrics.jsonl``, one row of the live view) and the sample completions of ``samples.jsonl``."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from evals.reasoning import step_fields
from rltk.grpo.scoring import ScoredGroup
from rltk.learner import UpdateStats


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"generate": 0.0, "reward": 0.0, "learn": 0.0}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0



def mean_of(xs: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    vals = [float(x) for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


@dataclass
class StepOutcome:
    """What one GRPO step produced, as the loop hands it to :func:`step_record`."""

    step: int  # 0-based
    scored: Sequence[ScoredGroup]
    rewards: torch.Tensor  # totals of the samples that were scored (failed ones left out)
    stats: UpdateStats
    timer: PhaseTimer
    drawn: int  # prompts drawn (dynamic sampling draws more than it keeps)
    flat: int  # of those, groups whose rewards were all equal
    stale: int  # groups sampled by an older adapter (pipelined)
    sync: dict[str, float]
    sampled_tokens: int  # tokens generated this step, the groups dynamic sampling dropped included
    failed: int = 0  # samples a reward failed on: masked out of the advantages and the loss


def step_record(o: StepOutcome, labels: Sequence[str], accuracy: str | None, kl_measured: bool, version: int,
                cursor: int, failures: dict[str, int]) -> dict[str, Any]:
    """One line of ``metrics.jsonl``: rewards per component, accuracy, learner statistics, lengths, timings."""
    r: dict[str, Any] = {
        "step": o.step + 1,
        "reward_mean": float(o.rewards.mean()) if o.rewards.numel() else None,
        "reward_std": float(o.rewards.std()) if o.rewards.numel() > 1 else None,
    }
    for label in labels:
        r[f"reward/{label}"] = mean_of([v for s in o.scored for v in s.components.get(label, [])])
    r["accuracy"] = r.get(f"reward/{accuracy}") if accuracy else None
    st = o.stats
    r.update({
        "kl": st.kl if kl_measured else None,  # beta = 0: no reference forward, KL not measured
        "clip_fraction": st.clip_fraction, "loss": st.loss, "grad_norm": st.grad_norm,
        "lr": st.lr, "skipped": st.skipped, "optimizer_steps": st.applied,
    })
    r.update(st.mismatch.metrics())  # sampler vs learner log-probs of the tokens learned (first iteration)
    r.update(_rollout_fields(o))
    r.update(_reasoning_fields(o, accuracy))
    r.update({"policy_version": version, "stale_groups": o.stale, "cursor": cursor, "failed_samples": o.failed})
    for label in labels:
        r[f"reward_failures/{label}"] = failures.get(label, 0)
    r.update(o.sync)
    return r


def _reasoning_fields(o: StepOutcome, accuracy: str | None) -> dict[str, Any]:
    """The training curves of reasoning (as in every eval, :mod:`evals.reasoning`): the share of completions whose
    every arithmetic step holds (at least one step), of right answers reached through a false step, and steps
    per completion."""
    checks = [step_fields(text, _correct(s, j, accuracy)) for s in o.scored for j, text in enumerate(s.group.texts)]
    if not checks:
        return {}
    judged = [c["lucky"] for c in checks if c["lucky"] is not None]
    return {"reasoning_validity": sum(c["reasoning_valid"] for c in checks) / len(checks),
            "lucky_answers": sum(judged) / len(judged) if judged else None,
            "steps_per_completion": sum(c["steps"] for c in checks) / len(checks)}


def _correct(s: ScoredGroup, j: int, accuracy: str | None) -> bool | None:
    v = s.components.get(accuracy, [None] * len(s.group.texts))[j] if accuracy else None
    return None if v is None else v >= 1.0


def _rollout_fields(o: StepOutcome) -> dict[str, Any]:
    comps = [c for s in o.scored for c in s.group.completion_ids]
    truncated = [t for s in o.scored for t in s.group.truncated]
    gen_tokens = sum(len(c) for c in comps)
    sec = o.timer.seconds
    return {
        "completion_len": gen_tokens / len(comps) if comps else None,
        "truncation_rate": sum(truncated) / len(truncated) if truncated else None,
        "groups": len(o.scored), "prompts_drawn": o.drawn,
        "zero_variance_share": o.flat / o.drawn if o.drawn else None,  # of the groups drawn (dynamic sampling drops them)
        "sequences_learned": o.stats.sequences, "learn_tokens": o.stats.tokens,
        "generated_tokens": gen_tokens,  # of the groups trained on
        "sampled_tokens": o.sampled_tokens,  # of every group drawn: what generation's time was spent on
        "tokens_per_s": o.sampled_tokens / sec["generate"] if sec["generate"] > 0 else None,
        "seconds/generate": sec["generate"], "seconds/reward": sec["reward"],
        "seconds/learn": sec["learn"], "seconds/step": sum(sec.values()),
    }


def sample_records(step: int, scored: Sequence[ScoredGroup], advantages: torch.Tensor, n_groups: int) -> list[dict[str, Any]]:
    """``samples.jsonl`` lines: the completions of the first ``n_groups`` groups with rewards and advantages,
    and ``details`` (label -> what the reward found, e.g. step_check's wrong steps) where a reward reported any."""
    out = []
    for b, s in enumerate(scored[:n_groups]):
        for j, text in enumerate(s.group.texts):
            rec = {"step": step, "index": s.group.index, "sample": j, "completion": text,
                   "reward": s.rewards[j], "components": {k: v[j] for k, v in s.components.items()},
                   "advantage": float(advantages[b, j]), "failed": s.failed_at(j),
                   "tokens": len(s.group.completion_ids[j]),
                   "truncated": s.group.truncated[j], "row": {k: v for k, v in s.group.row.items() if k != "solution"}}
            details = {k: v[j] for k, v in (s.details or {}).items() if v[j] is not None}
            if details:
                rec["details"] = details
            out.append(rec)
    return out


def reward_key(label: str | None) -> str | None:
    """The metrics key of a reward component (``reward/LABEL``)."""
    return f"reward/{label}" if label else None
