"""Reward functions written the way users write them, loaded in tests as ``file.py:fn``."""

from __future__ import annotations

import math
import re
import time

from rewards import reward


# --- written for TRL's documented signature, unchanged -------------------------------------------

def think_answer_format(completions, **kwargs):
    """TRL-style format reward for a chat dataset: each completion is a list of messages."""
    pattern = r"^<think>.*?</think><answer>.*?</answer>$"
    completion_contents = [completion[0]["content"] for completion in completions]
    matches = [re.match(pattern, content, re.DOTALL) for content in completion_contents]
    return [1.0 if match else 0.0 for match in matches]


def boxed_matches_truth(completions, ground_truth, **kwargs):
    """TRL-style accuracy reward on a standard-format dataset with a ``ground_truth`` column."""
    matches = [re.search(r"\\boxed\{(.*?)\}", completion) for completion in completions]
    contents = [match.group(1) if match else "" for match in matches]
    return [1.0 if c == gt else 0.0 for c, gt in zip(contents, ground_truth)]


# --- per-sample, lifted by @reward -----------------------------------------------------------------

@reward
def mentions_keyword(completion, keyword, **row):
    """1 if the row's keyword appears; not applicable (None) when the row has no keyword."""
    if not keyword:
        return None
    return 1.0 if keyword.lower() in completion.lower() else 0.0


# --- misbehaving rewards ---------------------------------------------------------------------------

def flaky(completions, **kwargs):
    out = []
    for c in completions:
        if "boom" in c:
            raise RuntimeError("cannot score this one")
        out.append(1.0)
    return out


def hangs(completions, **kwargs):
    for c in completions:
        if "hang" in c:
            time.sleep(120)
    return [1.0] * len(completions)


def not_a_number(completions, **kwargs):
    return [math.nan if "nan" in c else 0.5 for c in completions]


def wrong_length(completions, **kwargs):
    return [1.0, 1.0] + [1.0] * len(completions)


def crashes(completions, **kwargs):
    import os

    if any("crash" in c for c in completions):
        os._exit(3)
    return [1.0] * len(completions)
