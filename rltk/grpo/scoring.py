"""From rollouts to the learner's batch: score every completion (each reward component kept), find
the components that mean "correct" and "format", flatten groups and advantages into a TrainBatch.

Rewards are called as TRL's ``GRPOTrainer`` calls them (:func:`score_groups`): ``completions`` are
TRL's conversational form, ``[{"role": "assistant", "content": text}]``, for a row whose ``prompt``
column is a list of messages (TRL's conversational dataset format), and plain strings otherwise —
also when a template turned a text column into the chat prompt. ``prompts`` are the chat messages of
each row (as the policy saw them), ``completion_ids`` the sampled token ids, ``trainer_state`` a
``transformers.TrainerState`` (``global_step``: steps done, ``max_steps``, ``epoch``), and every row
column is passed by its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from rewards import RewardScores, RewardSet, RewardSpec
from rewards.core import chat_completion, is_conversational
from rltk.learner import TrainBatch
from rltk.loss import BatchTotals
from rltk.rollouts import RolloutGroup


@dataclass
class ScoredGroup:
    group: RolloutGroup
    rewards: list[float]  # [G] total reward
    components: dict[str, list[float | None]]  # label -> [G]
    failed: list[bool] | None = None  # [G] a reward failed on this sample: no advantage, no loss (None: none failed)
    details: dict[str, list[dict | None]] = field(default_factory=dict)  # label -> [G] what the reward found (step_check)

    def failed_at(self, j: int) -> bool:
        return bool(self.failed and self.failed[j])


@dataclass
class StepRollouts:
    """The groups a step trains on, and what drawing and scoring them took."""

    scored: list[ScoredGroup]
    drawn: int = 0  # prompts drawn (dynamic sampling draws more than it keeps)
    flat: int = 0  # of those, groups whose scored rewards were all equal
    samples: int = 0  # completions scored
    sampled_tokens: int = 0  # tokens generated for every group drawn, the dropped ones included
    failed: dict[str, int] = field(default_factory=dict)  # reward label -> samples it failed on this step
    errors: dict[str, str] = field(default_factory=dict)  # reward label -> its first error this step


def valid_mask(scored: Sequence[ScoredGroup]) -> torch.Tensor:
    """``[B, G]`` bool: the samples whose rewards were all scored (the others are masked out of training)."""
    return torch.tensor([[not s.failed_at(j) for j in range(len(s.rewards))] for s in scored], dtype=torch.bool)


def trainer_state(step: int, max_steps: int, epoch: float | None = None) -> Any:
    """The ``transformers.TrainerState`` rewards get as ``trainer_state`` (as in TRL): ``global_step`` =
    ``step`` (optimizer steps done before this one), ``max_steps``, ``epoch`` (passes over the data, a float).

    >>> s = trainer_state(3, 10, 0.75)
    >>> (s.global_step, s.max_steps, s.epoch)
    (3, 10, 0.75)
    """
    from transformers import TrainerState

    return TrainerState(epoch=None if epoch is None else float(epoch), global_step=int(step), max_steps=int(max_steps))


def score_groups(reward_set: RewardSet, groups: Sequence[RolloutGroup], prompts: Sequence[Any] | None = None,
                 trainer_state: Any = None) -> tuple[list[ScoredGroup], RewardScores]:
    """One ``RewardSet.score`` call over every completion of ``groups``: each row's columns (and its chat
    prompt as ``prompts``, and the completion's token ids as ``completion_ids``) repeated per completion,
    plus ``trainer_state`` when given; completions are conversational where the row's ``prompt`` is
    (see the module docstring)."""
    texts = [chat_completion(t) if is_conversational(g.row.get("prompt")) else t for g in groups for t in g.texts]
    columns: dict[str, Any] = {}
    keys = sorted({k for g in groups for k in g.row})
    for k in keys:
        columns[k] = [g.row.get(k) for g in groups for _ in g.texts]
    if prompts is not None:
        columns["prompts"] = [p for p, g in zip(prompts, groups) for _ in g.texts]
    columns["completion_ids"] = [c for g in groups for c in g.completion_ids]
    if trainer_state is not None:
        columns["trainer_state"] = trainer_state
    scores = reward_set.score(texts, **columns)
    out, i = [], 0
    for g in groups:
        n = len(g.texts)
        failed = list(scores.failed[i:i + n]) if scores.failed else None
        out.append(ScoredGroup(g, list(scores.total[i:i + n]), {k: list(v[i:i + n]) for k, v in scores.components.items()},
                               failed, {k: list(v[i:i + n]) for k, v in scores.details.items()}))
        i += n
    return out, scores


def build_train_batch(scored: Sequence[ScoredGroup], advantages: torch.Tensor, learner_version: int,
                      mask_truncated: bool, max_new_tokens: int) -> TrainBatch:
    """Flatten groups into the learner's batch. ``advantages`` [B, G]. Samples a reward failed on are left
    out entirely (no loss, not in the normalisers), and so are truncated completions when ``mask_truncated``;
    rollouts sampled by an older adapter carry their sampler log-probs as the old ones (the importance ratio's
    denominator), and every completion carries them as ``sampler_logprobs`` (the sampler–learner mismatch)."""
    prompts, comps, advs, behaviour, sampler, lengths = [], [], [], [], [], []
    for b, s in enumerate(scored):
        g = s.group
        stale = g.policy_version != learner_version
        for j, ids in enumerate(g.completion_ids):
            if s.failed_at(j) or (mask_truncated and g.truncated[j]):
                continue
            prompts.append(g.prompt_ids)
            comps.append(ids)
            advs.append(float(advantages[b, j]))
            behaviour.append(g.logprobs[j] if stale else None)
            sampler.append(g.logprobs[j])
            lengths.append(len(ids))
    totals = BatchTotals(sequences=sum(1 for n in lengths if n > 0), tokens=sum(lengths), max_tokens=max_new_tokens)
    return TrainBatch(prompts, comps, advs, behaviour, totals, sampler)


def accuracy_label(specs: Sequence[RewardSpec]) -> str | None:
    """The component that says "correct" (math_answer, or a component labelled 'correct')."""
    for s in specs:
        if s.name == "math_answer" or s.key == "correct":
            return s.key
    return None


def format_label(specs: Sequence[RewardSpec]) -> str | None:
    for s in specs:
        if s.name in ("format_answer", "think_format") or s.key == "format":
            return s.key
    return None
