"""User reward functions for the benchmarks: plain Python, no heavy imports (sandbox workers import this file)."""

from __future__ import annotations

import time


def digits_reward(completions, completion_ids, **kw):
    """Healthy user reward: share of digits in the completion (cheap, never fails)."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def hangs_on_a_quarter(completions, completion_ids, **kw):
    """The same reward, but it hangs (sleeps 10 minutes) on completions whose first token id % 4 == 0."""
    if any(ids and ids[0] % 4 == 0 for ids in completion_ids):
        time.sleep(600)
    return digits_reward(completions, completion_ids)


def fixed_cost_reward(completions, completion_ids=None, **kw):
    """A reward with a per-call cost, like a reward model's forward pass or a tokenizer load: 10 ms per call
    (sleeping, not spinning, so the figure does not depend on the CPU), then the cheap per-row work."""
    time.sleep(0.01)
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]
